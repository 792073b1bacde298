package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"berth/image"
	"berth/image/registry"
)

// Generations. A generation is one config, byte for byte, with the image
// digest each of its containers was resolved to (generation_store.go).
// `berth apply FILE`, `berth reload` and SIGHUP (the boot config file
// replaced) each start one; `berth rollback` goes back one by hand.
//
// An update runs in two phases on a goroutine of its own, while the
// supervisor loop keeps serving (generation_update.go):
//
//  1. The new config is read and validated, and every image it needs is
//     verified and unpacked into the cache, its digest recorded. Nothing
//     running changes; a failure ends the update here.
//  2. The generation is written, then recorded as trying; the changed
//     containers are stopped (dependents first) and started on the new
//     definitions (dependencies first); each must become ready
//     (waitReady). Then the generation is committed; on any failure the
//     device goes back to the committed one: its config, its images (by
//     digest, from the cache), the changed containers restarted on them.
//
// The record's states and the one rename that moves between them:
//
//	committed N                       idle
//	  → committed N, trying T, boots 0  phase 2 begins (T written before)
//	  → committed T, previous N          commit
//	  → committed N, last rollback T     rollback (recorded before the
//	                                     containers are switched back)
//	committed N, previous P
//	  → committed P, last rollback N     berth rollback
//
// At boot the record is read once the data partition is mounted, before
// anything else that depends on the config (generation_boot.go): berth
// boots the committed generation — unless the boot config file changed
// while berth was down, which is booted and recorded as the next
// committed generation; a generation still trying (a power cut
// or a crash interrupted its phase 2) is booted whole and checked again,
// its boots counted in the record before any container starts, and once
// it has had [update] max_boot_attempts boots the next boot reverts to
// the committed one. A power cut at any moment thus leaves the device on
// one whole generation. A record that cannot be read falls back to the
// highest generation marked committed.

// genState is the booter's generations.
type genState struct {
	// store is nil when STATE/generations cannot be used: then there are
	// no generations, and apply, reload and rollback say why.
	store    *genStore
	storeErr error
	rec      genRecord
	// cur is the committed generation, prev the one before it, trying
	// the one being tried (nil when none); each with its resolved config.
	cur, prev, trying          *generation
	curCfg, prevCfg, tryingCfg *Config
	// bootPath is the boot config file, bootData its bytes as read at
	// boot.
	bootPath string
	bootData []byte
	// first: the boot config file is booted (no record, or the file
	// changed while berth was down), and recorded as the next committed
	// generation once the boot's images are ready. verify: the booted
	// generation is being tried.
	first, verify bool
	// recheck: the committed generation is the boot config file's, booted
	// again from the file so that an image file replaced while berth was
	// down (a new initramfs or root filesystem) is taken; recordFirst
	// records a generation only when an image's digest changed.
	recheck bool
	// updating is set while an update, a rollback or a check runs.
	updating bool
	// unrecorded is why rec, as berth runs it, could not be written
	// (giveUp on a full data partition); nil once a record is written.
	unrecorded error
	// last is the last update's outcome, for berth status.
	last string

	mu       sync.Mutex
	prepared map[string]genImage // container → the image it had at boot
}

// notePrepared remembers the digest a container's image had at boot.
func (g *genState) notePrepared(name string, img genImage) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.prepared == nil {
		g.prepared = map[string]genImage{}
	}
	g.prepared[name] = img
}

// imageByRef is the image a known generation pulled as ref, a reference
// pinned to a digest.
func (g *genState) imageByRef(ref string) (genImage, bool) {
	if g == nil {
		return genImage{}, false
	}
	for _, gen := range []*generation{g.cur, g.prev, g.trying} {
		if gen == nil {
			continue
		}
		for _, img := range gen.Images {
			if img.Ref != "" && img.Ref == ref {
				return img, true
			}
		}
	}
	return genImage{}, false
}

// imageConfig is what a known generation's image says about running it.
func (g *genState) imageConfig(digest string) (image.Config, bool) {
	if g == nil {
		return image.Config{}, false
	}
	for _, gen := range []*generation{g.cur, g.prev, g.trying} {
		if gen == nil {
			continue
		}
		for _, img := range gen.Images {
			if img.Digest == digest {
				return img.Config, true
			}
		}
	}
	return image.Config{}, false
}

// prepareImage is the cache's Prepare for cc; when that fails and cc is
// pinned to a digest of a known generation whose tree is in the cache, it
// is that tree (its image file was replaced or removed since): a rollback
// gets the generation's own images back.
// A registry image is pulled (pull.go), unless a known generation has
// its pinned reference and the cache its tree.
func (s *supervisor) prepareImage(ctx context.Context, cache *image.Cache, cfg *Config, cc ContainerConfig) (image.Prepared, error) {
	img := cfg.ImagePath(cc)
	if registry.IsRef(img) {
		return s.prepareRegistryImage(ctx, cache, cfg, cc)
	}
	p, err := cache.Prepare(img, cfg.prepareOptions(cc))
	if err != nil && cc.Digest != "" {
		if ic, ok := s.b.gens.imageConfig(cc.Digest); ok {
			if lp, ok, lerr := cache.LookupAny(cc.Digest); lerr == nil && ok {
				s.b.log.Printf("image %s for %s: %v; the generation's tree %s is in the cache: using it", img, cc.Name, err, short(cc.Digest))
				lp.Config = ic
				p, err = lp, nil
			}
		}
	}
	if err == nil {
		s.b.gens.notePrepared(cc.Name, genImage{Digest: p.Digest, Config: p.Config})
	}
	return p, err
}

// crashAt is the test hook of the crash-injection tests: berth boot (never
// PID 1) started with BERTH_CRASH_AT=STEP kills itself with SIGKILL when
// an update reaches STEP, as a power cut would stop it there.
func (b *booter) crashAt(step string) {
	if b.opts.PID1 || os.Getenv("BERTH_CRASH_AT") != step {
		return
	}
	b.log.Printf("BERTH_CRASH_AT=%s: killing berth here", step)
	b.log.Flush(consoleFlushWait) // the line above is the test's sign
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}

// GenerationInfo is the generation section of berth status.
type GenerationInfo struct {
	// Current is the generation running; State is "committed", or
	// "trying" while it has not proved itself yet.
	Current int    `json:"current"`
	State   string `json:"state"`
	// Committed is the last committed generation; Previous the one
	// before it (berth rollback goes back to it), 0 when none.
	Committed int `json:"committed"`
	Previous  int `json:"previous,omitempty"`
	// Boots is how many boots the generation being tried has had.
	Boots int `json:"boots,omitempty"`
	// Source is the config file the current generation came from.
	Source       string    `json:"source,omitempty"`
	LastRollback *Rollback `json:"last_rollback,omitempty"`
	// Error says why there are no generations (the store is unusable).
	Error string `json:"error,omitempty"`
	// Unrecorded says, when the state shown is not what the record on
	// disk says, why the record could not be written (a full data
	// partition): the next boot goes by the record.
	Unrecorded string `json:"unrecorded,omitempty"`
}

// info is berth status's generation section.
func (g *genState) info() *GenerationInfo {
	if g == nil {
		return nil
	}
	if g.store == nil {
		msg := "no generation store"
		if g.storeErr != nil {
			msg = g.storeErr.Error()
		}
		return &GenerationInfo{Error: msg}
	}
	if g.rec.Committed == 0 {
		return &GenerationInfo{State: "recording", Error: "the boot's images are not ready yet"}
	}
	in := &GenerationInfo{Current: g.rec.Committed, State: "committed", Committed: g.rec.Committed, Previous: g.rec.Previous,
		LastRollback: g.rec.LastRollback}
	if g.rec.Trying != 0 {
		in.Current, in.State, in.Boots = g.rec.Trying, "trying", g.rec.Boots
	}
	if g.trying != nil {
		in.Source = g.trying.Source
	} else if g.cur != nil {
		in.Source = g.cur.Source
	}
	if g.unrecorded != nil {
		in.Unrecorded = g.unrecorded.Error()
	}
	return in
}

// nextNumber is the number of the next generation: above every one the
// record names, a generation given up included. Numbers run out only
// for a record planted with one near maxGeneration (an update a second
// takes 68 years): then the next is above the committed and previous
// ones alone, rather than every later update being refused.
func (r genRecord) nextNumber() int {
	n := max(r.Committed, r.Trying)
	if r.LastRollback != nil {
		n = max(n, r.LastRollback.From, r.LastRollback.To)
	}
	if n >= maxGeneration {
		n = max(r.Committed, r.Previous)
	}
	return n + 1
}

// absConfigPath makes a config path absolute: generations resolve
// relative image paths against it after a reboot.
func absConfigPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("config %s: %w", p, err)
	}
	return abs, nil
}

// errNoStore is why an update cannot start without a generation store.
func (g *genState) errNoStore() error {
	if g.storeErr != nil {
		return fmt.Errorf("no generations: %w", g.storeErr)
	}
	return errors.New("no generations: the generation store is not open")
}

// since is a short duration for logs.
func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }

// CheckStateDir reports whether dir is berth's state directory: a
// directory holding the boot's lock (.lock) or the generations. A state
// given by hand (berth image gc --state) that is neither would keep no
// generation's images: a typo must not pass for "no generations".
func CheckStateDir(dir string) error {
	for _, name := range []string{".lock", genDir} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%s: not berth's state directory (no .lock, no %s)", dir, genDir)
}

// KeptDigests returns the image digests the generations in state keep:
// the committed, the previous and the one being tried (unless its
// directory is gone). `berth image gc` keeps them. No store: none, and
// no error.
func KeptDigests(state string) ([]string, error) {
	g := &genStore{dir: filepath.Join(state, genDir)}
	if _, err := os.Lstat(g.dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	r, ok, err := g.readRecord()
	if err != nil || !ok {
		return nil, err
	}
	var out []string
	for _, n := range []int{r.Committed, r.Previous, r.Trying} {
		if n == 0 {
			continue
		}
		gen, _, err := g.readGeneration(n)
		if n == r.Trying && n != r.Committed && n != r.Previous && errors.Is(err, os.ErrNotExist) {
			// Gone: a rollback that could not be recorded (a full
			// data partition) removed it. No boot runs it — a boot
			// falls back from a tried generation it cannot read — so
			// it keeps no image, and gc, which such a partition
			// needs, is not refused.
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, gen.digests()...)
	}
	return out, nil
}
