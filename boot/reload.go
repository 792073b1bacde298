package boot

import (
	"context"
	"path/filepath"
	"reflect"
	"runtime/debug"
)

// plan is what switching to a config changes: the containers whose
// resolved definition (image digest included) differs, those added, those
// removed and those kept as they run.
type plan struct {
	changed, added, removed, kept []string
}

// empty reports whether the switch would change no container.
func (p plan) empty() bool { return len(p.changed)+len(p.added)+len(p.removed) == 0 }

// diff sorts the containers into kept, changed, added and removed by
// cfg, a resolved config (each container's digest pinned).
func (s *supervisor) diff(cfg *Config) plan {
	var p plan
	inNew := map[string]bool{}
	for _, cc := range cfg.Container {
		inNew[cc.Name] = true
		u := s.units[cc.Name]
		switch {
		case u == nil:
			p.added = append(p.added, cc.Name)
		case reflect.DeepEqual(u.cfg, cc) && !u.preparing: // a pull still waiting is replaced
			p.kept = append(p.kept, cc.Name)
		default:
			p.changed = append(p.changed, cc.Name)
		}
	}
	for _, name := range s.order {
		if !inNew[name] {
			p.removed = append(p.removed, name)
		}
	}
	return p
}

// switchTo makes cfg the running config by p: the changed and removed
// containers are stopped, dependents first, the changed and added ones
// readied on their pinned images off the loop (readyImages: an image
// file on the image goroutine, a registry image on a pull of its own,
// which a rollback may need when the cache lacks its tree), and the loop
// starts each as it is ready, dependencies first; the kept ones are not
// touched. A container whose image cannot be readied is failed, which
// fails its generation.
func (s *supervisor) switchTo(cfg *Config, p plan) {
	// The switch replaces s.units and s.b.cfg, which the image
	// goroutine's events name, while it and the pulls still use the image
	// cache and mount root filesystems under the containers' state
	// directories that the switch releases and reuses; going on while one
	// runs could lose a mount or release one in use. Every update has
	// waited for both off the loop (readyToSwitch), so these find
	// nothing to wait for; they stay as the guarantee, and ping the
	// watchdog if they ever wait.
	s.waitImages(context.Background(), false)
	s.waitPulls(context.Background())
	// 1. Stop the changed and removed ones, while the running state is
	// still whole. Every update has stopped them off the loop
	// (stopForSwitch): these find them stopped, or given up on.
	going := map[string]bool{}
	for _, name := range append(append([]string{}, p.changed...), p.removed...) {
		going[name] = true
	}
	changed := map[string]bool{}
	for _, name := range p.changed {
		changed[name] = true
	}
	for _, name := range stopOrder(s.order, s.units) {
		if !going[name] {
			continue
		}
		if !s.units[name].stopGivenUp() {
			s.stopAndWait(s.units[name])
		}
		if changed[name] && !cfg.onBridge(name) {
			s.detach(s.units[name], true)
		}
		s.units[name].answerAll("its definition was replaced by a new generation")
		s.units[name].log.close()
	}
	// 2. Switch to the new definitions; their images are readied off the
	// loop (readyImages) once the switch is made, and the loop starts
	// each as it is ready.
	next := map[string]*unit{}
	fresh := map[string]bool{}
	var order []string
	own := s.ownTreesFor(cfg)
	for _, cc := range cfg.Container {
		order = append(order, cc.Name)
		if u := s.units[cc.Name]; u != nil && !going[cc.Name] {
			next[cc.Name] = u
			continue
		}
		next[cc.Name] = newUnit(cc, s.b.log, own)
		fresh[cc.Name] = true
	}
	for _, name := range p.removed {
		s.detach(s.units[name], true)
		if err := releaseRootfs(filepath.Join(s.b.opts.StateDir, "containers", name), s.trash); err != nil {
			s.b.log.Printf("warning: %v", err)
		}
	}
	if !reflect.DeepEqual(cfg.Storage, s.b.cfg.Storage) {
		s.b.log.Printf("[storage] changed: it is read at boot, the change takes effect at the next one")
	}
	s.units, s.order, s.b.cfg = next, order, cfg
	var ready []string
	for _, name := range startOrder(s.order, s.units) {
		if fresh[name] {
			ready = append(ready, name)
		}
	}
	s.readyImages(cfg, ready, false)
	if s.b.clock != nil {
		s.b.clock.setServers(cfg.Network.NTP)
	}
	debug.FreeOSMemory() // as after the boot's images phase
	s.b.log.Printf("switched to %s: changed %v, added %v, removed %v, untouched %v", cfg.path, p.changed, p.added, p.removed, p.kept)
}

// stopAndWait stops u and waits until it has stopped (or its stop timeout
// and a grace period have passed).
func (s *supervisor) stopAndWait(u *unit) {
	if u.state != stateRunning && u.state != stateStopping {
		u.state = stateStopped
		return
	}
	s.stop(u, u.sup.stopTimeout)
	s.roundEnd = u.stopDeadline.Add(hurryWait)
	s.waitStopped(u)
}
