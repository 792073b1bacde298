package boot

import (
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
// and [storage] from; when it changed while berth was down, it is
// applied as an update once the boot is done.
func (b *booter) selectGeneration() error {
	path, err := absConfigPath(b.cfg.path)
	if err != nil {
		return err
	}
	g := &genState{bootPath: path}
	b.gens = g
	if g.bootData, err = readLimited(path, maxConfigSize); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if g.store, err = openGenStore(b.opts.StateDir); err != nil {
		g.storeErr = err
		b.log.Printf("WARNING: %v: no generations, berth apply and reload are refused", err)
		return nil
	}
	rec, ok, err := g.store.readRecord()
	if err != nil {
		rec, ok = genRecord{Committed: g.store.lastMarked()}, true
		b.log.Printf("WARNING: generation record: %v; falling back to the last committed generation (%d)", err, rec.Committed)
		if ok = rec.Committed > 0; ok {
			if err := g.store.writeRecord(rec); err != nil {
				b.log.Printf("warning: %v", err)
			}
		}
	}
	if ok {
		ok = b.loadGenerations(rec)
	}
	if !ok {
		// Generation 1 records these bytes: the config booted must be
		// theirs, should the file have been replaced since the config
		// phase read it.
		if b.cfg, err = ParseConfig(path, g.bootData); err != nil {
			return fmt.Errorf("%s is invalid:\n%w", path, err)
		}
		g.first = true
		g.store.prune()
		b.log.Printf("generation: none recorded: booting %s, recorded as generation 1 once its images are ready", path)
		return nil
	}
	if configDigest(g.bootData) != g.rec.Base {
		g.applyBoot = true
		b.log.Printf("generation: %s changed since berth last took it: it is applied as an update after the boot", path)
	}
	return nil
}

// loadGenerations loads the record's generations and picks the one to
// boot; false when the committed one cannot be read (the boot config file
// is booted instead, as generation 1).
func (b *booter) loadGenerations(rec genRecord) bool {
	g := b.gens
	cur, curCfg, err := g.store.readGeneration(rec.Committed)
	if err != nil {
		b.log.Printf("WARNING: %v: booting the boot config file instead", err)
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
	rec.Trying, rec.Boots = 0, 0
	rec.LastRollback = &Rollback{From: from, To: rec.Committed, Reason: fmt.Sprintf("at boot: %s", why), Time: time.Now().UTC()}
	b.log.Printf("generation: %s is reverted to %s: %s", describeGen(from), describeGen(rec.Committed), why)
	if err := g.store.writeRecord(rec); err != nil {
		b.log.Printf("warning: %v", err)
	}
	g.rec = rec
}

// bootImagesReady runs on the loop once the boot's images are all ready:
// generation 1 is recorded when there was none; a generation being tried
// is checked; a boot config file changed while berth was down is applied.
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
		return
	}
	s.afterUpdate()
}

// recordFirst records what this boot runs as generation 1, committed: the
// boot config file and the digests its images had.
func (s *supervisor) recordFirst() {
	g := s.b.gens
	gen := &generation{genMeta: genMeta{Number: 1, Source: g.bootPath, Images: map[string]genImage{}, Made: time.Now().UTC()}, Config: g.bootData}
	g.mu.Lock()
	for i, cc := range s.b.cfg.Container {
		if img, ok := g.prepared[cc.Name]; ok {
			gen.Images[cc.Name] = img
			s.b.cfg.Container[i].Digest = img.Digest
			if u := s.units[cc.Name]; u != nil {
				u.cfg.Digest = img.Digest
			}
		}
	}
	g.mu.Unlock()
	rec := genRecord{Committed: 1, Base: configDigest(g.bootData)}
	err := g.store.writeGeneration(gen)
	if err == nil {
		err = g.store.writeRecord(rec)
	}
	if err != nil {
		s.b.log.Printf("warning: generation 1: %v", err)
		return
	}
	if err := g.store.markCommitted(1); err != nil {
		s.b.log.Printf("warning: generation 1: committed mark: %v", err)
	}
	g.rec, g.cur, g.curCfg = rec, gen, s.b.cfg
	s.b.log.Printf("generation 1 recorded: %s, %d images", g.bootPath, len(gen.Images))
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
	if err := s.verify(cfg, names, cfg.Update.grace()); errors.Is(err, errShutdown) {
		return "", err
	} else if err != nil {
		return "", s.giveUp(gen.Number, err)
	}
	return s.commit(gen, cfg)
}

// afterUpdate runs on the loop once the boot, or an update, is done: a
// boot config file changed while berth was down is applied.
func (s *supervisor) afterUpdate() {
	g := s.b.gens
	if s.draining || g.updating {
		return
	}
	if g.applyBoot {
		g.applyBoot = false
		s.startUpdate(updateReload, nil)
	}
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
