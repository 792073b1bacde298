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

// context is the update's phase-1 context: Background when it has none.
func (up *update) context() context.Context {
	if up == nil || up.ctx == nil {
		return context.Background()
	}
	return up.ctx
}

// errClientGone ends phase 1 of an update whose client hung up.
var errClientGone = errors.New("cancelled: the client that asked for it hung up")

// cancelled is why phase 1 ended early: the client hung up, or berth is
// shutting down.
func (s *supervisor) cancelled() error {
	select {
	case <-s.loopDone:
		return errShutdown
	default:
		return errClientGone
	}
}

// notef sends one step of the update to the client that asked for them
// (Request.Progress), before its answer; nothing otherwise. A nil update
// takes none.
func (up *update) notef(format string, args ...any) {
	if up == nil || up.reply == nil || !up.progress {
		return
	}
	up.reply <- reply{Response: Response{Progress: fmt.Sprintf(format, args...)}}
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
		s.onLoop(func() {
			g.updating = false
			// The cache drops what no kept generation needs.
			if st := s.b.storage; st != nil && st.mounted && s.b.cfg.Images.Cache == "" {
				s.collectImages()
			}
		})
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

// offLoopPoll is how often waitOffLoop asks the loop whether what it
// waits for has come.
const offLoopPoll = 20 * time.Millisecond

// waitOffLoop waits, on an update's goroutine, until done (run on the
// loop) reports true, telling the client once what it waits for; the
// loop goes on meanwhile. errShutdown when the loop has ended.
func (s *supervisor) waitOffLoop(ctx context.Context, up *update, what string, done func() bool) error {
	told := false
	for {
		var ok bool
		if !s.onLoop(func() { ok = done() }) {
			return errShutdown
		}
		if !ok && ctx.Err() != nil {
			return s.cancelled()
		}
		if ok {
			return nil
		}
		if !told {
			up.notef("waiting for %s", what)
			told = true
		}
		select {
		case <-time.After(offLoopPoll):
		case <-ctx.Done():
		case <-s.loopDone:
			return errShutdown
		}
	}
}

// endPulls cancels the registry pulls under way and waits, off the loop,
// until they have ended: their units are about to be replaced (a unit
// still preparing is never kept, diff), and the switch must not release
// what a pull still uses. A pull waiting for its registry ends at once,
// an unpack under way finishes first; the loop takes their last words
// (pullDone).
func (s *supervisor) endPulls(up *update) error {
	if !s.onLoop(func() {
		if s.pending > 0 {
			s.pullCancel()
		}
	}) {
		return errShutdown
	}
	return s.waitOffLoop(context.Background(), up, "the registry pulls under way to end", func() bool { return s.pending == 0 })
}

// waitBootImages waits, off the loop, until the boot's image goroutine
// has ended and the loop has taken what it readied.
func (s *supervisor) waitBootImages(ctx context.Context, up *update) error {
	return s.waitOffLoop(ctx, up, "the boot's images to be ready", func() bool { return s.images == nil })
}

// readyToSwitch waits, off the loop, until switchTo would wait for
// nothing: the boot's images all taken, the pulls under way ended
// (endPulls). Every update calls it before it switches.
func (s *supervisor) readyToSwitch(up *update) error {
	if err := s.waitBootImages(context.Background(), up); err != nil {
		return err
	}
	return s.endPulls(up)
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
	if gen.Number = rec.nextNumber(); gen.Number > maxGeneration {
		return "", fmt.Errorf("%s refused, nothing changed: generation numbers are used up (%d)", verb, maxGeneration)
	}
	g := s.b.gens
	if err := g.store.writeGeneration(gen); err != nil {
		return "", fmt.Errorf("%s refused, nothing changed: %w", verb, err)
	}
	s.b.crashAt("written")
	rec.Trying, rec.Boots = gen.Number, 0
	if err := s.writeRecord(rec); err != nil {
		return "", fmt.Errorf("%s refused, nothing changed: %w", verb, err)
	}
	s.b.log.Printf("update: trying %s from %s: changed %v, added %v, removed %v", describeGen(gen.Number), gen.Source, p.changed, p.added, p.removed)
	up.notef("trying %s: changed %v, added %v, removed %v", describeGen(gen.Number), p.changed, p.added, p.removed)
	s.b.crashAt("trying")
	if err := s.readyToSwitch(up); err != nil {
		return "", err
	}
	// trying first: switchTo readies its registry images from the cache
	// by its pinned references (prepareRegistryImage), asking no registry
	// on the loop.
	if !s.onLoop(func() { g.trying, g.tryingCfg = gen, cfg; s.switchTo(cfg, p) }) {
		return "", errShutdown
	}
	s.b.crashAt("switched")
	release() // the overlays are mounted: gc keeps their trees now
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

// verify waits until each named container of cfg is ready (waitReady,
// with grace), in start order; the first that is not fails the
// generation.
func (s *supervisor) verify(up *update, cfg *Config, names []string, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace+startTimeout)
	defer cancel()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var order []string
	if !s.onLoop(func() { order = startOrder(s.order, s.units) }) {
		return errShutdown
	}
	for _, name := range order {
		if want[name] {
			up.notef("container %s: waiting until it is ready (%s)", name, readyMeans(grace))
			start := time.Now()
			if err := s.waitReady(ctx, name, grace); err != nil {
				return fmt.Errorf("container %s: %w", name, err)
			}
			up.notef("container %s: ready (%s)", name, since(start))
		}
	}
	return nil
}

// commit makes gen the committed generation.
func (s *supervisor) commit(gen *generation, cfg *Config) (string, error) {
	g := s.b.gens
	rec := g.rec
	rec.Previous, rec.Committed, rec.Trying, rec.Boots = rec.Committed, gen.Number, 0, 0
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
	rec.Trying, rec.Boots = 0, 0
	rec.LastRollback = &Rollback{From: from, To: rec.Committed, Reason: reason, Time: time.Now().UTC()}
	if err := s.writeRecord(rec); err != nil {
		return fmt.Errorf("%s failed (%v), and its rollback could not be recorded: %w", describeGen(from), why, err)
	}
	s.b.crashAt("rolledback")
	loaded := false
	s.onLoop(func() { loaded = g.curCfg != nil })
	if loaded { // else the pulls are left alone: no switch replaces their units
		if err := s.readyToSwitch(nil); err != nil {
			return fmt.Errorf("%s failed (%v); its rollback is recorded, and the next boot runs %s: %w", describeGen(from), why, describeGen(rec.Committed), err)
		}
	}
	s.onLoop(func() {
		g.trying, g.tryingCfg = nil, nil
		if g.curCfg == nil {
			s.b.log.Printf("warning: %s is not loaded: the containers stay as they are", describeGen(rec.Committed))
			return
		}
		s.switchTo(g.curCfg, s.diff(g.curCfg))
	})
	g.store.prune(rec.Committed, rec.Previous)
	return fmt.Errorf("%s rolled back to %s: %s", describeGen(from), describeGen(rec.Committed), reason)
}

// rollbackByHand is berth rollback: back to the previous committed
// generation.
func (s *supervisor) rollbackByHand(up *update) (string, error) {
	g := s.b.gens
	var rec genRecord
	var prev *generation
	var prevCfg *Config
	// The record is taken once the boot's images are ready: the boot
	// may record its config file as a generation then (recordFirst).
	if err := s.waitBootImages(context.Background(), up); err != nil {
		return "", err
	}
	s.onLoop(func() { rec, prev, prevCfg = g.rec, g.prev, g.prevCfg })
	if rec.Previous == 0 || prev == nil {
		return "", fmt.Errorf("no previous generation to go back to (generation %d is the only one kept)", rec.Committed)
	}
	from := rec.Committed
	rec.Committed, rec.Previous = rec.Previous, 0
	rec.LastRollback = &Rollback{From: from, To: rec.Committed, Reason: "by hand (berth rollback)", Time: time.Now().UTC()}
	if err := s.writeRecord(rec); err != nil {
		return "", err
	}
	s.b.crashAt("rolledback")
	if err := s.readyToSwitch(up); err != nil {
		return "", err
	}
	var p plan
	s.onLoop(func() {
		p = s.diff(prevCfg)
		s.switchTo(prevCfg, p)
		g.cur, g.curCfg, g.prev, g.prevCfg = prev, prevCfg, nil, nil
	})
	g.store.prune(rec.Committed)
	msg := fmt.Sprintf("rolled back from %s to %s", describeGen(from), describeGen(rec.Committed))
	// Answered once the switched containers run (a oneshot: has exited 0).
	up.notef("rolled back to %s: changed %v, added %v, removed %v", describeGen(rec.Committed), p.changed, p.added, p.removed)
	if err := s.verify(up, prevCfg, append(p.changed, p.added...), 0); err != nil {
		return "", fmt.Errorf("%s, but %w", msg, err)
	}
	return msg, nil
}

// writeRecord writes rec and, once it is durable, makes it the one berth
// status shows.
func (s *supervisor) writeRecord(rec genRecord) error {
	if err := s.b.gens.store.writeRecord(rec); err != nil {
		return err
	}
	s.onLoop(func() { s.b.gens.rec = rec })
	return nil
}

// readyMeans says what ready is for a container waited on with grace:
// healthy by its check, a oneshot's status 0, or up for grace.
func readyMeans(grace time.Duration) string {
	if grace <= 0 {
		return "running, healthy or, for a oneshot, exited 0"
	}
	return fmt.Sprintf("healthy, or up for %s; a oneshot: exited 0", grace)
}

// startTimeout bounds how long a changed container may take to start
// (its dependencies, its image, the network) before its grace period,
// and a oneshot to exit 0: past it the generation fails.
const startTimeout = 2 * time.Minute

// unitView is what waitReady looks at, copied on the loop.
type unitView struct {
	found           bool
	state           unitState
	oneshot         bool
	pid, restarts   int
	status          int
	detail, blocked string
	health          Health // HealthNone without a check
}

// view copies what waitReady needs of the unit called name.
func (s *supervisor) view(name string) unitView {
	u := s.units[name]
	if u == nil {
		return unitView{}
	}
	v := unitView{found: true, state: u.state, oneshot: u.sup.oneshot, restarts: u.restarts, status: u.lastStatus(), detail: u.describeState()}
	if u.c != nil {
		v.pid = u.c.Pid
	}
	v.health = HealthNone
	if u.health != nil {
		info, _ := u.health.watch()
		v.health = info.Health
	}
	if u.state == stateWaiting {
		if _, blocked, reason := s.readiness(u); blocked {
			v.blocked = reason
		}
	}
	return v
}

// waitReady waits until the container called name is ready: it has a
// health check and is healthy, or — without one — it stays up for grace
// from its start (running, the same process, never restarted), or a
// oneshot exits 0. It fails as soon as the container exits, restarts,
// cannot start, or ctx ends.
func (s *supervisor) waitReady(ctx context.Context, name string, grace time.Duration) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var up time.Time // when it was first seen running
	var pid, restarts int
	for {
		var v unitView
		if !s.onLoop(func() { v = s.view(name) }) {
			return errShutdown
		}
		switch {
		case !v.found:
			return errors.New("is not in the config")
		case v.oneshot && v.state == stateExited && v.status == 0:
			return nil
		case v.state == stateRunning && up.IsZero():
			up, pid, restarts = time.Now(), v.pid, v.restarts
		case v.state == stateRunning && (v.pid != pid || v.restarts != restarts):
			if v.health != HealthNone {
				return errors.New("restarted before its health check passed")
			}
			return fmt.Errorf("restarted within its grace period of %s", grace)
		case v.state == stateRunning && v.health == HealthUnhealthy:
			return errors.New("is unhealthy: its health check failed")
		case v.state == stateRunning && v.health == HealthHealthy:
			return nil
		case v.state == stateRunning && !v.oneshot && v.health == HealthNone && time.Since(up) >= grace:
			return nil
		case v.state == stateWaiting && v.blocked != "":
			return fmt.Errorf("cannot start: %s", v.blocked)
		case v.state == stateBackoff:
			return fmt.Errorf("exited with status %d and is restarting", v.status)
		case v.state != stateRunning && v.state != stateWaiting:
			return fmt.Errorf("is %s", v.detail)
		}
		select {
		case <-ctx.Done():
			if up.IsZero() {
				return fmt.Errorf("did not start within %s", startTimeout)
			}
			if v.health != HealthNone {
				return fmt.Errorf("did not become healthy within %s", grace+startTimeout)
			}
			return fmt.Errorf("oneshot did not finish within %s", grace+startTimeout)
		case <-tick.C:
		}
	}
}
