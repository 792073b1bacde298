package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"time"

	"berth/image/registry"
)

// reload re-reads the config file. An invalid file is refused and the
// running config stays. Otherwise containers whose definition (or image
// file) changed are stopped and started anew, removed ones are stopped,
// added ones started; the others are not touched.
func (s *supervisor) reload() error {
	cfg, err := LoadConfig(s.b.cfg.path)
	if err != nil {
		return err
	}
	s.waitImages(false) // the boot's images are readied before any change
	s.waitPulls()       // pulls waiting for a registry start again below
	// 1. Sort the containers into kept, changed, added and removed.
	var changed, added, kept, removed []string
	next, isChanged := map[string]*unit{}, map[string]bool{}
	for _, cc := range cfg.Container {
		u := s.units[cc.Name]
		switch {
		case u == nil:
			added = append(added, cc.Name)
		case reflect.DeepEqual(u.cfg, cc) && u.imageStamp == imageStamp(cfg.ImagePath(cc)) && !u.preparing:
			kept = append(kept, cc.Name)
			next[cc.Name] = u
		default:
			changed = append(changed, cc.Name)
			isChanged[cc.Name] = true
		}
	}
	for _, name := range s.order {
		if _, ok := next[name]; !ok && !isChanged[name] {
			removed = append(removed, name)
		}
	}
	// 2. Stop the changed and removed ones, while the running state is
	// still whole.
	for _, name := range append(append([]string{}, changed...), removed...) {
		s.stopAndWait(s.units[name])
		if isChanged[name] && !cfg.onBridge(name) {
			s.detach(s.units[name], true)
		}
		s.units[name].answerAll("its definition was replaced by a reload")
		s.units[name].log.close()
	}
	// 3. Ready the new definitions, then switch.
	var order []string
	for _, cc := range cfg.Container {
		order = append(order, cc.Name)
		if next[cc.Name] != nil {
			continue
		}
		u := newUnit(cc, s.b.log)
		if registry.IsRef(cc.Image) {
			s.startPull(cfg, u) // on its own goroutine, as at boot
		} else if err := s.prepareUnit(cfg, u); err != nil {
			u.state, u.lastError = stateFailed, err.Error()
			s.b.log.Printf("container %s: %v", cc.Name, err)
		}
		next[cc.Name] = u
	}
	for _, name := range removed {
		s.detach(s.units[name], true)
		if err := releaseRootfs(filepath.Join(s.b.opts.StateDir, "containers", name)); err != nil {
			s.b.log.Printf("warning: %v", err)
		}
	}
	if !reflect.DeepEqual(cfg.Storage, s.b.cfg.Storage) {
		s.b.log.Printf("[storage] changed: it is read at boot, the change takes effect at the next one")
	}
	s.units, s.order, s.b.cfg = next, order, cfg
	if s.b.clock != nil {
		s.b.clock.setServers(cfg.Network.NTP)
	}
	debug.FreeOSMemory() // as after the boot's images phase
	s.b.log.Printf("config reloaded: changed %v, added %v, removed %v, untouched %v", changed, added, removed, kept)
	return nil
}

// stopAndWait stops u and waits until it has stopped (or its stop timeout
// and a grace period have passed).
func (s *supervisor) stopAndWait(u *unit) {
	if u.state != stateRunning && u.state != stateStopping {
		u.state = stateStopped
		return
	}
	s.stop(u, u.sup.stopTimeout)
	s.waitStopped(u, u.stopDeadline.Add(5*time.Second))
}

// imageStamp identifies an image file's version cheaply: size and mtime.
func imageStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d@%d", fi.Size(), fi.ModTime().UnixNano())
}
