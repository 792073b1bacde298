package boot

import (
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"berth/board"
)

// moduleLoad is the board profile's kernel modules, loaded on a goroutine
// from the board phase on, in two parts. First those the containers need
// (board.ContainerModules: overlay, for their writable layers), which a
// container's root filesystem waits for before its overlay is mounted
// (waitContainerModules) — the image is unpacked meanwhile. Then the rest
// (the watchdog's driver), which nothing before the containers needs:
// they load once the first container has started or every image is ready
// (laterModules), at nice 10, so that on a one-CPU board they do not
// delay the first container, and the supervisor loop then arms the watchdog
// (modulesLoaded). The config's own [board] modules are loaded in the
// config phase, before any container, as they may be a container's.
type moduleLoad struct {
	containers chan struct{} // closed once the containers' modules are loaded
	later      chan struct{} // closed to let the rest load
	laterOnce  func()
	done       chan struct{} // closed once all are loaded
	loaded     []string
	errs       []error
	// reported is set by the supervisor loop once it has taken done.
	reported bool
}

// laterNice is the nice value the rest of the modules load at.
const laterNice = 10

// startModules starts loading p's modules.
func (b *booter) startModules(p board.Profile) {
	var first, rest []string
	for _, m := range p.Modules {
		if slices.Contains(board.ContainerModules, m) {
			first = append(first, m)
		} else {
			rest = append(rest, m)
		}
	}
	m := &moduleLoad{containers: make(chan struct{}), later: make(chan struct{}), done: make(chan struct{})}
	m.laterOnce = sync.OnceFunc(func() { close(m.later) })
	b.modules = m
	b.goSafe(func() {
		defer close(m.done)
		m.loaded, m.errs = board.Profile{Modules: first}.LoadModules(nil)
		close(m.containers)
		<-m.later
		// At a low priority, on a thread of its own that ends with the
		// goroutine: on one CPU the containers just started come first,
		// and the kernel's work of loading still gets a tenth of a CPU
		// they keep busy.
		runtime.LockOSThread()
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), laterNice)
		loaded, errs := board.Profile{Modules: rest}.LoadModules(nil)
		m.loaded, m.errs = append(m.loaded, loaded...), append(m.errs, errs...)
	})
}

// waitContainerModules waits until the modules the containers need are
// loaded (PID 1; at once otherwise). The image goroutine calls it.
func (b *booter) waitContainerModules() {
	if m := b.modules; m != nil {
		<-m.containers
	}
}

// laterModules lets the rest of the profile's modules load. The
// supervisor loop calls it once the first container has started or all
// images are ready; the shutdown, before reboot(2), whose power-off may
// need one of them (a Raspberry Pi's watchdog driver).
func (b *booter) laterModules() {
	if m := b.modules; m != nil {
		m.laterOnce()
	}
}

// modulesDone is closed once the profile's modules are all loaded; nil
// (never ready) when none are loading or the loop has taken it.
func (b *booter) modulesDone() <-chan struct{} {
	if b.modules == nil || b.modules.reported {
		return nil
	}
	return b.modules.done
}

// modulesLoaded logs what the profile's modules goroutine loaded and arms
// the watchdog, the profile's and then as the config's [board] table
// says. The supervisor loop calls it once modulesDone is closed: it alone
// touches the watchdog from then on.
func (b *booter) modulesLoaded() {
	m := b.modules
	m.reported = true
	if len(m.loaded) > 0 {
		b.log.Printf("modules loaded: %v", m.loaded)
	}
	for _, err := range m.errs {
		b.log.Debugf("%v", err)
	}
	b.armWatchdog(b.board.Profile.Watchdog, DefaultWatchdogTimeout)
	b.configureWatchdog(b.cfg.Board)
}

// finishModules, at shutdown, lets the rest of the modules load and waits
// for them, without arming the watchdog, for at most
// modulesShutdownWait: a load that hangs (a driver's probe) must not hold
// the power-off, which nothing would then reset.
func (b *booter) finishModules() {
	m := b.modules
	if m == nil || m.reported {
		return
	}
	m.laterOnce()
	select {
	case <-m.done:
	case <-time.After(modulesShutdownWait):
		b.log.Printf("warning: modules still loading after %s; shutting down without them", modulesShutdownWait)
		return
	}
	m.reported = true
	b.log.Printf("modules loaded: %v", m.loaded)
}

// modulesShutdownWait bounds the shutdown's wait for the modules still
// loading.
var modulesShutdownWait = 30 * time.Second
