package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"berth/image"
	"berth/image/registry"
)

// updateKind is what started an update.
type updateKind int

const (
	updateApply    updateKind = iota // berth apply FILE
	updateReload                     // berth reload, SIGHUP, a boot config file changed while down
	updateRollback                   // berth rollback
	updateCheck                      // the boot of a generation being tried: check it, commit or revert
)

// update is one update in progress.
type update struct {
	kind updateKind
	path string // the config file, for apply and reload
	// reply answers the control request that asked for it; nil for
	// SIGHUP and the boot's own.
	reply chan reply
	// progress: the request asked for a line per step (notef).
	progress bool
	// ctx ends phase 1 when the client that asked hangs up, or the loop
	// ends; nothing changes after phase 1 because of it.
	ctx context.Context
}

// startUpdate starts an update on its own goroutine, on the loop. Only
// one runs at a time.
func (s *supervisor) startUpdate(kind updateKind, r *request) {
	g := s.b.gens
	up := &update{kind: kind}
	if r != nil {
		up.reply, up.path, up.progress = r.reply, r.Path, r.Progress
	}
	if g == nil {
		g = &genState{}
	}
	if kind == updateReload {
		up.path = g.bootPath
	}
	switch {
	case g.store == nil:
		up.finish(s, "", g.errNoStore())
		return
	case g.updating:
		up.finish(s, "", errors.New("an update is in progress: try again once it has ended (berth status)"))
		return
	case s.draining:
		up.finish(s, "", errors.New("berth is shutting down"))
		return
	case g.verify && kind != updateCheck:
		// The check starts once the boot's images are ready
		// (bootImagesReady); an update started first would refuse it.
		up.finish(s, "", fmt.Errorf("%s is being tried: berth checks it once the boot's images are ready, then commits or reverts it; try again after that (berth status)", describeGen(g.rec.Trying)))
		return
	}
	g.updating = true
	ctx, cancel := context.WithCancel(context.Background())
	up.ctx = ctx
	var gone <-chan struct{}
	if r != nil {
		gone = r.gone
	}
	go func() {
		select {
		case <-gone:
		case <-s.loopDone:
		case <-ctx.Done():
		}
		cancel()
	}()
	s.b.goSafe(func() {
		defer cancel()
		msg, err := s.runUpdate(up)
		up.finish(s, msg, err)
		// The cache drops what no kept generation needs: what to keep is
		// read on the loop, the trees removed off it.
		var cache *image.Cache
		var keep map[string]bool
		// The next update may begin meanwhile: a tree it uses is leased
		// or mounted, which the collection spares.
		s.onLoop(func() {
			g.updating = false
			if st := s.b.storage; st != nil && st.mounted && s.b.cfg.Images.Cache == "" {
				cache, keep = s.imagesToKeep()
			}
		})
		if cache != nil {
			s.gcImages(cache, keep)
		}
	})
}

// finish logs the update's outcome and answers its request.
func (up *update) finish(s *supervisor, msg string, err error) {
	if err != nil {
		s.b.log.Printf("update: %v", err)
	} else {
		s.b.log.Printf("update: %s", msg)
	}
	if up.reply == nil {
		return
	}
	if err != nil {
		up.reply <- reply{Response: Response{Error: err.Error()}}
		return
	}
	up.reply <- reply{Response: Response{Message: msg}}
}

// onLoop runs f on the supervisor loop and waits for it; false when the
// loop has ended (berth is shutting down) and f did not run.
func (s *supervisor) onLoop(f func()) bool {
	done := make(chan struct{})
	select {
	case s.calls <- func() { f(); close(done) }:
		<-done
		return true
	case <-s.loopDone:
		return false
	}
}

// errShutdown ends an update that berth's shutdown interrupted: the
// record stays as it is, and the next boot carries on from it.
var errShutdown = errors.New("berth is shutting down: the update ends here, the next boot carries on from the record")

// runUpdate runs an update to its end and returns what to answer.
func (s *supervisor) runUpdate(up *update) (string, error) {
	switch up.kind {
	case updateRollback:
		return s.rollbackByHand(up)
	case updateCheck:
		return s.checkBooted()
	}
	// Phase 1: nothing running changes.
	verb := map[updateKind]string{updateApply: "apply", updateReload: "reload"}[up.kind]
	gen, cfg, release, err := s.resolve(up, up.path)
	defer release()
	if err == nil && up.context().Err() != nil {
		err = s.cancelled() // the last chance: phase 2 goes on to its end
	}
	if err != nil {
		return "", fmt.Errorf("%s refused, nothing changed: %w", verb, err)
	}
	s.b.crashAt("resolved")
	var p plan
	var rec genRecord
	same := false
	if !s.onLoop(func() {
		p, rec = s.diff(cfg), s.b.gens.rec
		cur := s.b.gens.cur
		same = cur != nil && cur.Source == gen.Source && bytes.Equal(cur.Config, gen.Config)
	}) {
		return "", errShutdown
	}
	if rec.Committed == 0 {
		return "", fmt.Errorf("%s refused, nothing changed: the running generation could not be recorded (see the log)", verb)
	}
	base := rec.Base
	if up.kind == updateReload {
		rec.Base = configDigest(gen.Config)
	}
	if p.empty() && same {
		if rec.Base != base {
			if err := s.writeRecord(rec); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("nothing changed: generation %d stays", rec.Committed), nil
	}
	// Phase 2.
	if err := s.recordTrying(up, verb, gen, rec, p); err != nil {
		return "", err
	}
	g := s.b.gens
	if err := s.readyToSwitch(up); err != nil {
		return "", err
	}
	if err := s.stopForSwitch(up, p); err != nil {
		return "", err
	}
	// trying first: switchTo readies its registry images from the cache
	// by its pinned references (prepareRegistryImage), asking no registry
	// on the loop.
	if !s.onLoop(func() { g.trying, g.tryingCfg = gen, cfg; s.switchTo(cfg, p) }) {
		return "", errShutdown
	}
	s.b.crashAt("switched")
	// The phase-1 leases stay until the check has ended (the deferred
	// release): the switch mounts the trees off the loop, and until then
	// only a lease keeps a collection (another update's) from them.
	if err := s.verify(up, cfg, append(append([]string{}, p.changed...), p.added...), cfg.Update.grace()); errors.Is(err, errShutdown) {
		return "", err
	} else if err != nil {
		return "", s.giveUp(gen.Number, err)
	}
	msg, err := s.commit(gen, cfg)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: changed %v, added %v, removed %v", msg, p.changed, p.added, p.removed), nil
}

// recordTrying begins phase 2: gen, numbered after rec's, written to the
// data partition and recorded as trying. An error leaves the running
// generation as it was.
func (s *supervisor) recordTrying(up *update, verb string, gen *generation, rec genRecord, p plan) error {
	if gen.Number = rec.nextNumber(); gen.Number > maxGeneration {
		return fmt.Errorf("%s refused, nothing changed: generation numbers are used up (%d)", verb, maxGeneration)
	}
	if err := s.b.gens.store.writeGeneration(gen); err != nil {
		return fmt.Errorf("%s refused, nothing changed: %w", verb, err)
	}
	s.b.crashAt("written")
	rec.Trying, rec.Boots = gen.Number, 0
	if err := s.writeRecord(rec); err != nil {
		return fmt.Errorf("%s refused, nothing changed: %w", verb, err)
	}
	s.b.log.Printf("update: trying %s from %s: changed %v, added %v, removed %v", describeGen(gen.Number), gen.Source, p.changed, p.added, p.removed)
	up.notef("trying %s: changed %v, added %v, removed %v", describeGen(gen.Number), p.changed, p.added, p.removed)
	s.b.crashAt("trying")
	return nil
}

// resolve is phase 1: the config at path read and validated, and every
// image it needs verified, unpacked into the cache and its digest
// recorded. The leases on the trees it returns in release keep gc from
// them until they are mounted.
func (s *supervisor) resolve(up *update, path string) (*generation, *Config, func(), error) {
	var leases []func()
	release := func() {
		for _, l := range leases {
			l()
		}
		leases = nil
	}
	abs, err := absConfigPath(path)
	if err != nil {
		return nil, nil, release, err
	}
	data, err := readLimited(abs, maxConfigSize)
	if err != nil {
		return nil, nil, release, fmt.Errorf("read %s: %w", abs, err)
	}
	cfg, err := ParseConfig(abs, data)
	if err != nil {
		return nil, nil, release, err
	}
	if len(cfg.Container) == 0 {
		// An empty file is what a tool that writes the boot config file
		// in place leaves for a moment: as an update it would stop every
		// container.
		return nil, nil, release, fmt.Errorf("%s has no [[container]]: an update to it would stop every container", abs)
	}
	names := make([]string, len(cfg.Container))
	for i, cc := range cfg.Container {
		names[i] = cc.Name
	}
	up.notef("read %s: containers %s", abs, strings.Join(names, ", "))
	var cache *image.Cache
	// The cache is the image goroutine's until it ends. The wait is off
	// the loop, which meanwhile takes the images, starts their
	// containers, reaps and answers (and so a shutdown) as always.
	if err := s.waitBootImages(up.context(), up); err != nil {
		return nil, nil, release, err
	}
	if !s.onLoop(func() { cache, err = s.imageCache(cfg) }) {
		return nil, nil, release, errShutdown
	}
	if err != nil {
		return nil, nil, release, fmt.Errorf("image cache: %w", err)
	}
	gen := &generation{genMeta: genMeta{Source: abs, Images: map[string]genImage{}, Made: time.Now().UTC()}, Config: data}
	for i, cc := range cfg.Container {
		if up.context().Err() != nil {
			return nil, nil, release, s.cancelled()
		}
		img, lease, err := s.resolveImage(up, cache, cfg, cc)
		if err != nil {
			return nil, nil, release, fmt.Errorf("container %s: %w", cc.Name, err)
		}
		leases = append(leases, lease)
		gen.Images[cc.Name] = img
		cfg.Container[i].pin(img)
	}
	return gen, cfg, release, nil
}

// resolveImage readies one container's image for phase 1: verified and
// in the cache, and the digest its generation records. This is where a
// registry image's tag is resolved to a digest, once per generation
// (registry.Resolve, for docker:// images), before it is pulled and
// prepared; a local image's digest is its file's.
func (s *supervisor) resolveImage(up *update, cache *image.Cache, cfg *Config, cc ContainerConfig) (genImage, func(), error) {
	start := time.Now()
	up.notef("image %s for %s: verifying, unpacking into the cache", cfg.ImagePath(cc), cc.Name)
	var p image.Prepared
	var ref string
	var err error
	if registry.IsRef(cc.Image) {
		// Once, here: no retry, a registry that cannot be reached fails
		// the update and leaves the device as it was.
		p, ref, err = s.pullImage(up.context(), cache, cfg, cc)
		if errors.Is(err, context.Canceled) && up.context().Err() != nil {
			err = s.cancelled()
		}
	} else {
		p, err = cache.Prepare(cfg.ImagePath(cc), cfg.prepareOptions(cc))
	}
	if err != nil {
		return genImage{}, nil, fmt.Errorf("image: %w", err)
	}
	s.b.log.Printf("update: image %s for %s: %s ready in the cache (%s)", cfg.ImagePath(cc), cc.Name, short(p.Digest), since(start))
	up.notef("image %s for %s: %s ready in the cache (%s)", cfg.ImagePath(cc), cc.Name, short(p.Digest), since(start))
	return genImage{Digest: p.Digest, Config: p.Config, Ref: ref}, p.Release, nil
}

// commit makes gen the committed generation.
func (s *supervisor) commit(gen *generation, cfg *Config) (string, error) {
	g := s.b.gens
	rec := g.rec
	rec.Previous, rec.Committed, rec.Trying, rec.Boots, rec.Hold = rec.Committed, gen.Number, 0, 0, false
	if err := s.writeRecord(rec); err != nil {
		return "", s.giveUp(gen.Number, err)
	}
	s.b.crashAt("committed")
	if err := g.store.markCommitted(gen.Number); err != nil {
		s.b.log.Printf("warning: %s: committed mark: %v", describeGen(gen.Number), err)
	}
	s.onLoop(func() {
		g.prev, g.prevCfg, g.cur, g.curCfg = g.cur, g.curCfg, gen, cfg
		g.trying, g.tryingCfg = nil, nil
	})
	g.store.prune(rec.Committed, rec.Previous)
	return describeGen(gen.Number) + " committed", nil
}

// giveUp rolls the generation being tried back: the record first, then
// the containers, switched back to the committed generation. It returns
// the error to answer.
func (s *supervisor) giveUp(from int, why error) error {
	g := s.b.gens
	rec := g.rec
	reason := oneLine(why)
	rec.Trying, rec.Boots, rec.Hold = 0, 0, true
	rec.LastRollback = &Rollback{From: from, To: rec.Committed, Reason: reason, Time: time.Now().UTC()}
	// A rollback that cannot be recorded (a full data partition) still
	// goes back now: the generation that failed does not stay running
	// until a reboot. The record on disk still names it as tried, but
	// it is pruned below, so the next boot, finding it gone, falls back
	// (were the prune to fail too, that boot would try it again, and
	// give up after maxBoots).
	unrecorded := s.writeRecord(rec)
	if unrecorded != nil {
		s.b.log.Printf("warning: %s failed (%v); its rollback could not be recorded (%v): going back to %s all the same", describeGen(from), why, unrecorded, describeGen(rec.Committed))
	} else {
		s.b.crashAt("rolledback")
	}
	var back *Config
	s.onLoop(func() { back = g.curCfg })
	var p plan
	if back != nil { // else the pulls are left alone: no switch replaces their units
		var err error
		if err = s.readyToSwitch(nil); err == nil {
			p, err = s.stopReplaced(nil, back)
		}
		if err != nil && unrecorded != nil {
			return fmt.Errorf("%s failed (%v); its rollback could not be recorded (%v) nor made: %w", describeGen(from), why, unrecorded, err)
		}
		if err != nil {
			return fmt.Errorf("%s failed (%v); its rollback is recorded, and the next boot runs %s: %w", describeGen(from), why, describeGen(rec.Committed), err)
		}
	}
	s.onLoop(func() {
		g.trying, g.tryingCfg = nil, nil
		if unrecorded != nil { // what runs now, which status shows, and why the disk says otherwise
			g.rec, g.unrecorded = rec, unrecorded
		}
		if g.curCfg == nil {
			s.b.log.Printf("warning: %s is not loaded: the containers stay as they are", describeGen(rec.Committed))
			return
		}
		s.switchTo(g.curCfg, p)
	})
	g.store.prune(rec.Committed, rec.Previous)
	if unrecorded != nil {
		return fmt.Errorf("%s rolled back to %s: %s; the rollback could not be recorded: %w", describeGen(from), describeGen(rec.Committed), reason, unrecorded)
	}
	return fmt.Errorf("%s rolled back to %s: %s", describeGen(from), describeGen(rec.Committed), reason)
}

// rollbackByHand is berth rollback: back to the previous committed
// generation. The generation rolled back from stays on disk until the
// one rolled back to is seen to run: if it does not, berth switches back
// (undoRollback), its record as before, rather than be left with
// neither.
func (s *supervisor) rollbackByHand(up *update) (string, error) {
	g := s.b.gens
	var rec genRecord
	var prev, cur *generation
	var prevCfg, curCfg *Config
	// The record is taken once the boot's images are ready: the boot
	// may record its config file as a generation then (recordFirst).
	if err := s.waitBootImages(context.Background(), up); err != nil {
		return "", err
	}
	s.onLoop(func() { rec, prev, prevCfg, cur, curCfg = g.rec, g.prev, g.prevCfg, g.cur, g.curCfg })
	if rec.Previous == 0 || prev == nil {
		return "", fmt.Errorf("no previous generation to go back to (generation %d is the only one kept)", rec.Committed)
	}
	before := rec
	from := rec.Committed
	// The generation left stays the record's previous, and on disk,
	// until the one gone back to runs: a reboot before then keeps both.
	rec.Committed, rec.Previous, rec.Hold = rec.Previous, from, true
	rec.LastRollback = &Rollback{From: from, To: rec.Committed, Reason: "by hand (berth rollback)", Time: time.Now().UTC()}
	if err := s.writeRecord(rec); err != nil {
		return "", err
	}
	s.b.crashAt("rolledback")
	if err := s.readyToSwitch(up); err != nil {
		return "", err
	}
	p, err := s.stopReplaced(up, prevCfg)
	if err != nil {
		return "", err
	}
	s.onLoop(func() {
		// Before the switch: its image goroutine reads the generations.
		g.cur, g.curCfg, g.prev, g.prevCfg = prev, prevCfg, cur, curCfg
		s.switchTo(prevCfg, p)
	})
	msg := fmt.Sprintf("rolled back from %s to %s", describeGen(from), describeGen(rec.Committed))
	// Answered once the switched containers run (a oneshot: has exited 0).
	up.notef("rolled back to %s: changed %v, added %v, removed %v", describeGen(rec.Committed), p.changed, p.added, p.removed)
	if err := s.verify(up, prevCfg, append(p.changed, p.added...), 0); err != nil {
		return "", s.undoRollback(up, before, fmt.Errorf("%s, but %w", msg, err))
	}
	rec.Previous = 0
	if err := s.writeRecord(rec); err != nil {
		s.b.log.Printf("warning: %s: %v (%s stays on disk)", msg, err, describeGen(from))
		return msg, nil
	}
	s.onLoop(func() { g.prev, g.prevCfg = nil, nil })
	g.store.prune(rec.Committed)
	return msg, nil
}

// undoRollback switches back to the generation a berth rollback left,
// whose record was before, when the one it went back to did not run
// (why). The record says so in its last rollback. It returns the error
// to answer.
func (s *supervisor) undoRollback(up *update, before genRecord, why error) error {
	g := s.b.gens
	var back, to *generation
	var backCfg, toCfg *Config
	s.onLoop(func() { back, backCfg, to, toCfg = g.prev, g.prevCfg, g.cur, g.curCfg })
	rec := before
	rec.LastRollback = &Rollback{From: before.Committed, To: before.Previous, Time: time.Now().UTC(),
		Reason: "by hand (berth rollback), undone: " + oneLine(why)}
	if err := s.writeRecord(rec); err != nil {
		return fmt.Errorf("%w; going back to %s could not be recorded either: %v", why, describeGen(before.Committed), err)
	}
	p, err := s.stopReplaced(up, backCfg)
	if err != nil {
		return fmt.Errorf("%w; %s is recorded again, but its containers could not be switched back: %v", why, describeGen(before.Committed), err)
	}
	s.onLoop(func() {
		g.cur, g.curCfg, g.prev, g.prevCfg = back, backCfg, to, toCfg
		s.switchTo(backCfg, p)
	})
	s.b.log.Printf("update: %v; back on %s", why, describeGen(before.Committed))
	if err := s.verify(up, backCfg, append(p.changed, p.added...), 0); err != nil {
		return fmt.Errorf("%w; back on %s, which stays committed, but %v", why, describeGen(before.Committed), err)
	}
	return fmt.Errorf("%w; back on %s, which stays committed", why, describeGen(before.Committed))
}

// writeRecord writes rec and, once it is durable, makes it the one berth
// status shows.
func (s *supervisor) writeRecord(rec genRecord) error {
	if err := s.b.gens.store.writeRecord(rec); err != nil {
		return err
	}
	s.onLoop(func() { s.b.gens.rec, s.b.gens.unrecorded = rec, nil })
	return nil
}
