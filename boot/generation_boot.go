package boot

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// selectGeneration is the generation phase: once the data partition is
// mounted (the store lives on it), and before anything else that depends
// on the config, it reads the record and makes the generation to boot
// the config: the committed one, or the one being tried while it has
// boots left (counted here, before any container starts). The boot config
// file itself is what the earlier phases took their hostname, modules
// and [storage] from; when there is no record, or the file changed while
// berth was down, the file is booted and recorded as the next committed
// generation.
func (b *booter) selectGeneration() error {
	path, err := absConfigPath(b.cfg.path)
	if err != nil {
		return err
	}
	g := &genState{bootPath: path, bootData: b.cfgData}
	b.gens = g
	bootCfg := b.cfg // the config phase's parse of bootData
	if g.store, err = openGenStore(b.opts.StateDir); err != nil {
		g.storeErr = err
		b.log.Printf("WARNING: %v: no generations, berth apply and reload are refused", err)
		return nil
	}
	rec, ok, err := g.store.readRecord()
	if err != nil {
		// The last committed generation wins over the boot config file,
		// which the damaged record cannot say was changed since; it is
		// booted as recorded, the one committed before it kept.
		rec = genRecord{Committed: g.store.lastMarked(0), Base: configDigest(g.bootData), Hold: true}
		rec.Previous = g.store.lastMarked(rec.Committed)
		b.log.Printf("WARNING: generation record: %v; falling back to the last committed generation (%d)", err, rec.Committed)
		if ok = rec.Committed > 0; ok {
			if err := g.store.writeRecord(rec); err != nil {
				b.log.Printf("warning: %v", err)
			}
		}
	}
	switch {
	case ok && configDigest(g.bootData) != rec.Base:
		b.takeBootFile(rec, "changed since berth last took it")
	case ok && b.loadGenerations(rec):
		if g.rec.Trying != 0 || g.cur == nil || g.cur.Source != path || g.rec.Hold || !bytes.Equal(g.cur.Config, g.bootData) {
			return nil
		}
		// The committed generation is the boot config file, unchanged:
		// boot the file, not its recorded digests, so that an image
		// replaced at the same path is taken (recordFirst).
		g.recheck = true
	case ok:
		// The committed generation cannot be read (loadGenerations said
		// why): the newest committed one that can is booted instead,
		// else the boot config file, numbered after the record's.
		if fb, found := b.fallBack(rec); found && b.loadGenerations(fb) {
			return nil
		}
		b.takeBootFile(rec, "booted instead: no committed generation can be read")
	default:
		g.store.prune()
		b.log.Printf("generation: none recorded: booting %s, recorded as generation 1 once its images are ready", path)
	}
	// The generation recorded takes the bytes the config phase parsed,
	// which the earlier phases took their hostname, modules and storage
	// from: the config booted is theirs, at its absolute path.
	bootCfg.path = path
	b.cfg = bootCfg
	if g.recheck {
		g.pinRefs(b.cfg)
	}
	g.first = true
	return nil
}

// pinRefs pins cfg's registry images to the references the committed
// generation resolved their tags to: an image file replaced at its path
// is taken at boot, but a tag is resolved once per generation — a tag
// moved in the registry since is taken by the next update, and the boot
// asks no registry for an image the cache has.
func (g *genState) pinRefs(cfg *Config) {
	for i, cc := range cfg.Container {
		if img, ok := g.cur.Images[cc.Name]; ok && img.Ref != "" && cc.checkRef(img.Ref) == nil {
			cfg.Container[i].Image = img.Ref
		}
	}
}

// fallBack is the record of a boot whose committed generation cannot be
// read: the previous generation, else the newest other one with the
// committed mark, booted as recorded; false when none reads back.
func (b *booter) fallBack(rec genRecord) (genRecord, bool) {
	g := b.gens
	to := rec.Previous
	if _, _, err := g.store.readGeneration(to); to == 0 || err != nil {
		to = g.store.lastMarked(rec.Committed)
	}
	if to == 0 {
		return rec, false
	}
	fb := genRecord{Committed: to, Previous: g.store.lastMarked(to), Base: rec.Base, Hold: true,
		LastRollback: &Rollback{From: rec.Committed, To: to, Reason: "at boot: it cannot be read", Time: time.Now().UTC()}}
	b.log.Printf("generation: %s cannot be read: falling back to %s", describeGen(rec.Committed), describeGen(to))
	if err := g.store.writeRecord(fb); err != nil {
		b.log.Printf("warning: %v", err)
	}
	return fb, true
}

// takeBootFile is the boot of a boot config file changed while berth was
// down (a new root filesystem or initramfs, an edit before a reboot), or
// of one no committed generation can replace (why says which): it is
// booted as it is and, once its images are ready, recorded as the next
// committed generation, the committed one before it kept as the previous.
func (b *booter) takeBootFile(rec genRecord, why string) {
	g := b.gens
	g.rec = rec
	if cur, curCfg, err := g.store.readGeneration(rec.Committed); err == nil {
		g.cur, g.curCfg = cur, curCfg
	}
	if rec.Trying != 0 {
		b.log.Printf("generation: %s, being tried, is superseded by the boot config file", describeGen(rec.Trying))
	}
	b.log.Printf("generation: %s %s: booting it, recorded as generation %d once its images are ready",
		g.bootPath, why, rec.nextNumber())
}

// loadGenerations loads the record's generations and picks the one to
// boot; false when the committed one cannot be read (selectGeneration
// then falls back).
func (b *booter) loadGenerations(rec genRecord) bool {
	g := b.gens
	cur, curCfg, err := g.store.readGeneration(rec.Committed)
	if err != nil {
		b.log.Printf("WARNING: %v", err)
		return false
	}
	g.rec, g.cur, g.curCfg, b.cfg = rec, cur, curCfg, curCfg
	if rec.Previous != 0 {
		if g.prev, g.prevCfg, err = g.store.readGeneration(rec.Previous); err != nil {
			b.log.Printf("warning: %v: berth rollback has nothing to go back to", err)
			g.prev, g.prevCfg = nil, nil
		}
	}
	state := "committed"
	if rec.Trying != 0 {
		t, tcfg, err := g.store.readGeneration(rec.Trying)
		switch {
		case err != nil:
			b.revertAtBoot(fmt.Sprintf("it cannot be read: %v", err))
		case rec.Boots >= tcfg.Update.maxBoots():
			b.revertAtBoot(fmt.Sprintf("it was not committed within %d boots", rec.Boots))
		default:
			rec.Boots++
			if err := g.store.writeRecord(rec); err != nil {
				b.revertAtBoot(fmt.Sprintf("its boot could not be counted: %v", err))
				break
			}
			g.rec, g.trying, g.tryingCfg, b.cfg, g.verify = rec, t, tcfg, tcfg, true
			state = fmt.Sprintf("trying, boot %d of %d", rec.Boots, tcfg.Update.maxBoots())
		}
	}
	g.store.prune(g.rec.Committed, g.rec.Previous, g.rec.Trying)
	b.log.Printf("generation: booting %d (%s) from %s", max(g.rec.Committed, g.rec.Trying), state, b.cfg.path)
	return true
}

// revertAtBoot gives up the generation being tried before anything of it
// runs: the record goes back to the committed one.
func (b *booter) revertAtBoot(why string) {
	g := b.gens
	rec := g.rec
	from := rec.Trying
	rec.Trying, rec.Boots, rec.Hold = 0, 0, true
	rec.LastRollback = &Rollback{From: from, To: rec.Committed, Reason: fmt.Sprintf("at boot: %s", why), Time: time.Now().UTC()}
	b.log.Printf("generation: %s is reverted to %s: %s", describeGen(from), describeGen(rec.Committed), why)
	if err := g.store.writeRecord(rec); err != nil {
		b.log.Printf("warning: %v", err)
	}
	g.rec = rec
}

// bootImagesReady runs on the loop once the boot's images are all ready:
// the boot config file is recorded as a generation when it was booted; a
// generation being tried is checked.
func (s *supervisor) bootImagesReady() {
	g := s.b.gens
	if g == nil || g.store == nil || s.draining {
		return
	}
	if g.first {
		g.first = false
		s.recordFirst()
	}
	if g.verify {
		g.verify = false
		s.startUpdate(updateCheck, nil)
	}
}

// recordFirst records what this boot runs as the next generation,
// committed: the boot config file and the digests its images had. The
// committed generation before it, if any, becomes the previous one.
func (s *supervisor) recordFirst() {
	g := s.b.gens
	n := g.rec.nextNumber()
	if n > maxGeneration {
		s.b.log.Printf("warning: the boot config file is not recorded: generation numbers are used up (%d)", maxGeneration)
		return
	}
	gen := &generation{genMeta: genMeta{Number: n, Source: g.bootPath, Images: map[string]genImage{}, Made: time.Now().UTC()}, Config: g.bootData}
	g.mu.Lock()
	for i, cc := range s.b.cfg.Container {
		if img, ok := g.prepared[cc.Name]; ok {
			gen.Images[cc.Name] = img
			s.b.cfg.Container[i].pin(img)
			if u := s.units[cc.Name]; u != nil {
				u.cfg.pin(img)
			}
		}
	}
	g.mu.Unlock()
	if g.recheck && g.cur != nil && sameImages(g.cur.Images, gen.Images) {
		s.b.log.Printf("%s: the boot config file and its images are unchanged", describeGen(g.cur.Number))
		return
	}
	rec := genRecord{Committed: n, Base: configDigest(g.bootData), LastRollback: g.rec.LastRollback}
	if g.cur != nil {
		rec.Previous = g.cur.Number
	}
	err := g.store.writeGeneration(gen)
	if err == nil {
		err = g.store.writeRecord(rec)
	}
	if err != nil {
		s.b.log.Printf("warning: %s: %v", describeGen(n), err)
		return
	}
	if err := g.store.markCommitted(n); err != nil {
		s.b.log.Printf("warning: %s: committed mark: %v", describeGen(n), err)
	}
	g.prev, g.prevCfg = g.cur, g.curCfg
	g.rec, g.cur, g.curCfg = rec, gen, s.b.cfg
	g.store.prune(rec.Committed, rec.Previous)
	s.b.log.Printf("%s recorded: %s, %d images", describeGen(n), g.bootPath, len(gen.Images))
}

// checkBooted is the update of a boot on a generation being tried: every
// container must be ready, then the generation is committed; otherwise
// the device goes back to the committed one.
func (s *supervisor) checkBooted() (string, error) {
	g := s.b.gens
	var gen *generation
	var cfg *Config
	var names []string
	s.onLoop(func() { gen, cfg, names = g.trying, g.tryingCfg, append([]string{}, s.order...) })
	if gen == nil {
		return "nothing to check", nil
	}
	s.b.crashAt("checking")
	if err := s.verify(nil, cfg, names, cfg.Update.grace()); errors.Is(err, errShutdown) {
		return "", err
	} else if err != nil {
		return "", s.giveUp(gen.Number, err)
	}
	return s.commit(gen, cfg)
}

// keep is the set of image digests the kept generations need: gc spares
// them.
func (g *genState) keep() map[string]bool {
	out := map[string]bool{}
	if g == nil {
		return out
	}
	for _, gen := range []*generation{g.cur, g.prev, g.trying} {
		if gen != nil {
			for _, d := range gen.digests() {
				out[d] = true
			}
		}
	}
	return out
}

// sameImages reports whether two generations' containers have the same
// image digests.
func sameImages(a, b map[string]genImage) bool {
	if len(a) != len(b) {
		return false
	}
	for name, img := range a {
		if other, ok := b[name]; !ok || other.Digest != img.Digest {
			return false
		}
	}
	return true
}
