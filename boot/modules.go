package boot

import "berth/board"

// moduleLoad is the board profile's kernel modules, loaded on a goroutine
// from the board phase on: the cgroup layout is read and the config
// parsed meanwhile, on another CPU where the board has one. The config
// phase waits for them before it arms the watchdog (whose driver may be
// one of them) and loads the config's own; nothing before needs a module.
type moduleLoad struct {
	done   chan struct{}
	loaded []string
	errs   []error
}

// startModules starts loading p's modules.
func (b *booter) startModules(p board.Profile) {
	m := &moduleLoad{done: make(chan struct{})}
	b.modules = m
	b.goSafe(func() {
		defer close(m.done)
		m.loaded, m.errs = p.LoadModules(nil)
	})
}

// waitModules waits for the profile's modules and logs what was loaded.
func (b *booter) waitModules() {
	m := b.modules
	if m == nil {
		return
	}
	<-m.done
	b.modules = nil
	if len(m.loaded) > 0 {
		b.log.Printf("modules loaded: %v", m.loaded)
	}
	for _, err := range m.errs {
		b.log.Debugf("%v", err)
	}
}
