// Package boot is berth as PID 1: it mounts the early filesystems, leaves
// the initramfs, sets up logging and the board, reads the config, readies
// each container's image, then supervises the containers — restarts,
// dependencies, logs, a control socket, the hardware watchdog — reaps
// every child, and finally shuts the machine down with reboot(2). Run as
// `berth boot` on a development host it does the same minus the host-wide
// steps (mounts, root switch, modules, watchdog, reboot).
//
// What it runs is a generation: a config and its image digests, recorded
// in STATE/generations (generation.go). An update (berth apply, reload,
// SIGHUP) resolves the new config first, then moves the record through
// states, each one fsynced rename of STATE/generations/current:
// committed N → trying T (the containers switched, then checked) →
// committed T, previous N; or → committed N with T's rollback recorded,
// then the containers switched back. A boot reads the record before
// anything that depends on the config: it runs the committed generation,
// or the one being tried, counting its boots, until [update]
// max_boot_attempts makes the next boot revert it.
package boot

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"berth/board"
	"berth/container"
)

// Version is berth's version, set at link time.
var Version = "dev"

// DefaultStateDir holds berth's working state: unpacked root filesystems.
const DefaultStateDir = "/var/lib/berth"

// Options configure a boot.
type Options struct {
	// PID1 is set when berth is the machine's init.
	PID1 bool
	// ConfigPath overrides berth.config= and /etc/berth.toml.
	ConfigPath string
	// StateDir overrides DefaultStateDir.
	StateDir string
	// Socket is the control socket (default DefaultSocket).
	Socket string
	// Console receives the log (default: standard output).
	Console io.Writer
}

// booter carries one boot's state through its phases.
type booter struct {
	opts   Options
	log    *Logger
	sigs   chan os.Signal // signals but SIGCHLD (catchSignals)
	chld   chan os.Signal // SIGCHLD
	reaper *reaper
	// fatal receives panics from berth's goroutines; requests, control
	// requests for the supervisor loop. fatalEnded, guarded by fatalMu,
	// is set once the loop, which takes fatal, has ended: a panic is
	// logged from then on (reportPanic).
	fatal      chan error
	fatalMu    sync.Mutex
	fatalEnded bool
	requests   chan request
	started    float64 // uptime when berth started
	// initramfs is set when, as PID 1, berth started on the initramfs.
	initramfs bool
	// The kernel command line's arguments (PID 1), and berth.debug and
	// berth.panic from them.
	cmdline     map[string]string
	debug       bool
	panicAction Action
	panicDelay  time.Duration

	board board.Board
	// modules is the profile's modules loading on a goroutine, until the
	// config phase has waited for them.
	modules  *moduleLoad
	watchdog *watchdog
	cgroups  *container.Layout
	cfg      *Config
	// cfgData is the bytes the config phase parsed into cfg: the
	// generation phase boots and records them.
	cfgData []byte
	sup     *supervisor
	clock   *timekeeper
	// uplink configures the appliance's interfaces (PID 1 only);
	// netChanged wakes the supervisor loop when their state changes.
	uplink     *board.Uplink
	netChanged chan struct{}
	// storage is the data partition ([storage]), nil without one.
	storage *storageState
	// gens is the generations (generation.go).
	gens *genState
	// security is what the security phase found and loaded.
	security *SecurityInfo
	// control listens on the control socket; closing it removes the file.
	control *net.UnixListener
	// followers holds a slot per berth logs -f being served, longConns
	// one per request that may last (control.go).
	followers chan struct{}
	longConns chan struct{}
}

// Main boots the appliance. As PID 1 it never returns: every path, errors
// and panics included, ends in reboot(2). Otherwise it returns the exit
// status of `berth boot`: 0 when every container exited 0.
func Main(opts Options) int {
	// Signals first: Go's default action for SIGTERM and friends ends the
	// process, and PID 1 ending panics the kernel.
	sigs := catchSignals()

	if opts.Console == nil {
		opts.Console = os.Stdout
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if abs, err := filepath.Abs(opts.StateDir); err == nil {
		opts.StateDir = abs // overlay options and mountinfo carry it
	}
	if opts.Socket == "" {
		opts.Socket = DefaultSocket
	}
	bootGC() // berth boot on a host too: its memory is PID 1's
	b := &booter{
		opts: opts, log: NewLogger(opts.Console), sigs: sigs.sigs, chld: sigs.chld, reaper: newReaper(),
		fatal: make(chan error, 1), requests: make(chan request), started: Uptime(), netChanged: make(chan struct{}, 1),
		panicAction: Reboot, panicDelay: 10 * time.Second,
	}
	// berth boot's last lines reach its console before it returns (as PID 1
	// it never does: halt flushes).
	defer b.log.Flush(consoleFlushWait)
	if !opts.PID1 {
		release, err := claimInstance(opts)
		if err != nil {
			b.log.Printf("FATAL: %v", err)
			return 1
		}
		defer release()
	}
	action, status, err := b.run()
	b.endFatal() // when a phase failed the loop never ran: log what waits
	if err != nil {
		b.log.Printf("FATAL: %v", err)
		if !opts.PID1 {
			return 1
		}
		action = b.panicAction
		b.fatalDelay()
	}
	return b.shutdown(action, status)
}

// claimInstance makes this berth boot the only one on its state directory
// and control socket (see instance.go).
func claimInstance(opts Options) (func(), error) {
	if err := checkSocketFree(opts.Socket); err != nil {
		return nil, err
	}
	return lockState(opts.StateDir)
}

// run performs the boot phases in order, then supervises the containers
// until they have all ended or a shutdown is asked for. A panic becomes an
// error: PID 1 must not die of one.
func (b *booter) run() (action Action, status int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	mode := "on this host (berth boot)"
	if b.opts.PID1 {
		mode = "as PID 1"
	}
	b.log.Printf("berth %s starting %s (%s, kernel %s)", Version, mode, runtime.GOARCH, kernelRelease())

	phases := []struct {
		name string
		run  func() error
	}{
		{"early mounts", b.earlyMounts},
		{"console and kmsg logging", b.setupLogging},
		{"board", b.setupBoard},
		{"config", b.loadConfig},
		{"storage", b.setupStorage},
		{"generation", b.selectGeneration},
		{"security", b.setupSecurity},
		{"images", b.startImages}, // readied on a goroutine from here on
		{"clock", b.startClock},
		{"network", b.setupNetwork},
		{"containers", b.startSupervision},
	}
	for i, p := range phases {
		t := time.Now()
		if err := p.run(); err != nil {
			return b.panicAction, 1, fmt.Errorf("%s: %w", p.name, err)
		}
		b.log.Printf("phase %d/%d %s: %.2f ms", i+1, len(phases), p.name, float64(time.Since(t))/1e6)
	}
	b.log.Printf("boot done %.0f ms after berth started", (Uptime()-b.started)*1000)

	action, status = b.sup.loop()
	b.endFatal() // nothing takes b.fatal now: the shutdown's panics are logged
	b.sup.stopAll()
	b.sup.releaseAll()
	b.sup.closeNetwork()
	b.closeControl()
	return action, status, nil
}

// earlyMounts makes the root one that containers can pivot_root away
// from, when it is the initramfs, and mounts the early filesystems. On a
// development host it only makes berth the subreaper of its containers.
func (b *booter) earlyMounts() error {
	if !b.opts.PID1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("become subreaper: %w", err)
		}
		return nil
	}
	proc, err := mountOnce("/proc", "proc", "proc", msNoSUIDDevExec, "")
	if err != nil {
		return err
	}
	b.readCmdline()
	slowMonitorLogged(b.log)
	// Ctrl-Alt-Del becomes SIGINT to PID 1 (an orderly reboot) instead of
	// an immediate reset.
	_, _, _ = unix.Syscall6(unix.SYS_REBOOT, unix.LINUX_REBOOT_MAGIC1, unix.LINUX_REBOOT_MAGIC2, unix.LINUX_REBOOT_CMD_CAD_OFF, 0, 0, 0)
	initramfs, err := onInitramfs()
	if err != nil {
		return err
	}
	b.initramfs = initramfs
	if initramfs {
		if err := leaveInitramfs(); err != nil {
			return err
		}
		b.log.Printf("root is the initramfs: a bind mount of it made the root, nothing copied")
		b.sizeRoot()
	}
	mounted, err := mountEarly(b.log)
	if err != nil {
		return err
	}
	if proc && !slices.Contains(mounted, "/proc") {
		mounted = append([]string{"/proc"}, mounted...) // moved along with the root
	}
	if slices.Contains(mounted, cgroupRoot) && isCgroup2(cgroupRoot) {
		b.goSafe(func() { favorDynmods(b.log) })
	}
	if initramfs && rootOnRamfs() {
		if err := mountStateTmpfs(b.opts.StateDir); err != nil {
			return err
		}
		mounted = append(mounted, b.opts.StateDir)
	}
	// Nothing on an appliance needs mounts shared with another namespace;
	// private ones make every container's mount namespace cheaper.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		b.log.Printf("warning: make / private: %v", err)
	}
	b.log.Printf("mounted %v", mounted)
	return nil
}

// armWatchdog opens dev as early as possible; boot phases ping it from a
// goroutine until the supervisor loop takes over.
func (b *booter) armWatchdog(dev string, timeout time.Duration) {
	if dev == "" || dev == "none" {
		return
	}
	if _, err := os.Stat(dev); err != nil {
		b.log.Debugf("no watchdog at %s", dev)
		return
	}
	w, err := openWatchdog(dev, timeout)
	if err != nil {
		b.log.Printf("warning: %v", err)
		return
	}
	b.watchdog = w
	b.log.Printf("watchdog %s armed: timeout %s", dev, w.timeout)
}

// loadConfig reads the config named by the options, the kernel command
// line (berth.config=PATH) or DefaultConfig; as PID 1 it then loads the
// config's [board] modules. The watchdog is armed once the profile's
// modules are loaded (modules.go).
func (b *booter) loadConfig() error {
	path := b.opts.ConfigPath
	if path == "" && b.opts.PID1 {
		path = b.cmdline["berth.config"]
	}
	if path == "" {
		path = DefaultConfig
	}
	cfg, data, err := loadConfigFile(path)
	if err != nil {
		return fmt.Errorf("%s is invalid:\n%w", path, err)
	}
	b.cfg, b.cfgData = cfg, data
	b.log.Printf("config %s: %d containers", path, len(cfg.Container))
	if !b.opts.PID1 {
		return nil
	}
	name := cfg.machineHostname()
	if err := unix.Sethostname([]byte(name)); err != nil {
		b.log.Printf("warning: set hostname %q: %v", name, err)
	}
	if len(cfg.Board.Modules) > 0 {
		loaded, errs := board.Profile{}.LoadModules(cfg.Board.Modules)
		b.log.Printf("config modules loaded: %v", loaded)
		for _, err := range errs {
			b.log.Printf("warning: %v", err)
		}
	}
	b.checkMemoryController()
	return nil
}

// configureWatchdog applies [board] watchdog and watchdog_timeout.
func (b *booter) configureWatchdog(bc BoardConfig) {
	switch {
	case bc.Watchdog == "none" && b.watchdog != nil:
		b.watchdog.close()
		b.watchdog = nil
		b.log.Printf("watchdog disarmed: [board] watchdog = \"none\"")
	case bc.Watchdog != "" && bc.Watchdog != "none" && (b.watchdog == nil || b.watchdog.dev != bc.Watchdog):
		if b.watchdog != nil {
			b.watchdog.close()
			b.watchdog = nil
		}
		b.armWatchdog(bc.Watchdog, bc.watchdogTimeout())
	case b.watchdog != nil && bc.WatchdogTimeout != "":
		if err := b.watchdog.setTimeout(bc.watchdogTimeout()); err != nil {
			b.log.Printf("warning: watchdog timeout %s: %v", bc.watchdogTimeout(), err)
		}
		b.watchdog.interval = b.watchdog.timeout / 3
		b.log.Printf("watchdog timeout %s", b.watchdog.timeout)
	}
}

// checkMemoryController warns when a container asks for a memory limit
// the kernel cannot enforce: such a container will not start. The warning
// says why the controller is off and what turns it on.
func (b *booter) checkMemoryController() {
	if board.HasMemoryCgroup() {
		return
	}
	for _, c := range b.cfg.Container {
		if c.Limits.Memory != "" {
			b.log.Printf("WARNING: the kernel's memory cgroup controller is disabled, but container %s asks for a memory limit "+
				"and will not start: %s", c.Name, board.MemoryCgroupHint())
			return
		}
	}
}

// startImages starts readying every container's root filesystem; the
// supervisor loop starts each container once its image is ready
// (images.go). As PID 1 on the initramfs, the images it holds were hashed
// when it was built (bootdigests.go).
func (b *booter) startImages() error {
	b.sup = newSupervisor(b, b.cfg)
	if b.initramfs {
		b.sup.rememberBootDigests()
	}
	b.sup.startImages()
	return nil
}

// pingWatchdog pets the watchdog from a goroutine until the function it
// returns is called: for the boot phases that may take long (waiting for
// the data partition, unpacking images) before the supervisor loop takes
// over.
func (b *booter) pingWatchdog() (stop func()) {
	if b.watchdog == nil {
		return func() {}
	}
	done := make(chan struct{})
	go b.watchdog.pingUntil(done)
	return func() { close(done) }
}

// startSupervision opens the control socket; the loop then starts the
// containers as their dependencies allow.
func (b *booter) startSupervision() error {
	if err := b.serveControl(b.opts.Socket); err != nil {
		b.log.Printf("warning: %v", err)
	} else {
		b.log.Printf("control socket %s", b.opts.Socket)
	}
	return nil
}

// goSafe runs f on a new goroutine whose panic becomes a fatal error
// instead of the end of PID 1.
func (b *booter) goSafe(f func()) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				b.reportPanic(fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
			}
		}()
		f()
	}()
}

// reportPanic hands a goroutine's panic to the supervisor loop, a fatal
// error that ends it; once the loop has ended (endFatal), or with another
// fatal error already waiting for it, it logs the panic instead, so that
// none goes unsaid.
func (b *booter) reportPanic(err error) {
	b.fatalMu.Lock()
	defer b.fatalMu.Unlock()
	if !b.fatalEnded {
		select {
		case b.fatal <- err:
			return
		default:
			b.log.Printf("FATAL (while another fatal error is handled): %v", err)
			return
		}
	}
	b.log.Printf("after the supervisor loop ended: %v", err)
}

// endFatal marks the supervisor loop ended, logging the fatal error it
// left untaken: from now on reportPanic logs.
func (b *booter) endFatal() {
	b.fatalMu.Lock()
	defer b.fatalMu.Unlock()
	if b.fatalEnded {
		return
	}
	b.fatalEnded = true
	select {
	case err := <-b.fatal:
		b.log.Printf("after the supervisor loop ended: %v", err)
	default:
	}
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
