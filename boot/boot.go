// Package boot is berth as PID 1: it mounts the early filesystems, leaves
// the initramfs, reads the config, unpacks each container's image, starts
// and supervises the containers, reaps every child and finally shuts the
// machine down with reboot(2). Run as `berth boot` on a development host it
// does the same minus the host-wide steps (mounts, root switch, reboot).
package boot

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/u-root/u-root/pkg/cmdline"
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
	// Console receives the log (default: standard output).
	Console io.Writer
}

// booter carries one boot's state through its phases.
type booter struct {
	opts   Options
	log    *Logger
	sigs   chan os.Signal
	reaper *reaper
	// fatal receives panics from berth's goroutines.
	fatal   chan error
	started float64 // uptime when berth (first) started
	// switched is set in the berth that leaveInitramfs re-executed.
	switched bool
	cgroups  *container.Layout
	cfg      *Config
	// mounted lists what the early mounts mounted, in order.
	mounted []string
}

// Main boots the appliance. As PID 1 it never returns: every path, errors
// and panics included, ends in reboot(2). Otherwise it returns the exit
// status of `berth boot`: 0 when every container exited 0.
func Main(opts Options) int {
	// 1. Catch every signal before anything else can happen.
	sigs := catchSignals()

	if opts.Console == nil {
		opts.Console = os.Stdout
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	b := &booter{
		opts: opts, log: NewLogger(opts.Console), sigs: sigs,
		reaper: newReaper(), fatal: make(chan error, 1), started: Uptime(),
	}
	if s, ok := os.LookupEnv(switchedEnv); ok {
		// Re-executed after leaving the initramfs: keep the first start.
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			b.started, b.switched = v, true
		}
		os.Unsetenv(switchedEnv)
	}
	action, status, err := b.run()
	if err != nil {
		b.log.Printf("FATAL: %v", err)
		if !opts.PID1 {
			return 1
		}
	}
	return b.shutdown(action, status)
}

// run performs the boot phases in order and supervises the containers
// until they have all exited or a signal asks for a shutdown. A panic
// becomes an error: PID 1 must not die of one.
func (b *booter) run() (action Action, status int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			action = PowerOff
		}
	}()
	mode := "on this host (berth boot)"
	if b.opts.PID1 {
		mode = "as PID 1"
	}
	b.log.Printf("berth %s starting %s (%s, kernel %s)", Version, mode, runtime.GOARCH, kernelRelease())

	// 2. Host-wide setup: early mounts, off the initramfs.
	if b.opts.PID1 {
		if err := b.setupHost(); err != nil {
			return PowerOff, 1, err
		}
	} else if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return PowerOff, 1, fmt.Errorf("become subreaper: %w", err)
	}

	// 3. Board.
	bd := board.Detect()
	b.log.Printf("board: %s (from %s)", bd.Model, bd.Source)

	// 4. Cgroups.
	layout, err := container.DetectCgroups()
	if err != nil {
		return PowerOff, 1, err
	}
	b.cgroups = layout
	b.log.Printf("cgroups: %s", layout)
	if removed := layout.CleanStale(b.opts.PID1); len(removed) > 0 {
		b.log.Printf("removed cgroups left by an earlier berth: %v", removed)
	}

	// 5. Config.
	if err := b.loadConfig(); err != nil {
		return PowerOff, 1, err
	}

	// 6. Images and containers, then supervise until done.
	s := newSupervisor(b)
	s.startAll()
	action, status = s.loop()
	s.stopAll(10 * time.Second)
	return action, status, nil
}

// setupHost mounts the early filesystems and moves the root off the
// initramfs (which re-executes berth).
func (b *booter) setupHost() error {
	t := time.Now()
	if _, err := mountOnce("/proc", "proc", "proc", msNoSUIDDevExec, ""); err != nil {
		return err
	}
	initramfs, err := onInitramfs()
	if err != nil {
		return err
	}
	if initramfs {
		b.log.Printf("root is the initramfs: moving it to a tmpfs")
		return leaveInitramfs(b.log, b.started)
	}
	if b.switched {
		b.log.Printf("root moved off the initramfs to a tmpfs; berth re-executed %.1f ms after its first start", (Uptime()-b.started)*1000)
	}
	mounted, err := mountEarly(b.log)
	b.mounted = mounted
	if err != nil {
		return err
	}
	b.log.Printf("early mounts done in %s: %v", time.Since(t).Round(time.Microsecond), mounted)
	return nil
}

// loadConfig reads the config named by the options, the kernel command
// line (berth.config=PATH) or DefaultConfig.
func (b *booter) loadConfig() error {
	path := b.opts.ConfigPath
	if path == "" && b.opts.PID1 {
		if p, ok := cmdline.Flag("berth.config"); ok && p != "" {
			path = p
		}
	}
	if path == "" {
		path = DefaultConfig
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		return fmt.Errorf("config:\n%w", err)
	}
	b.cfg = cfg
	b.log.Printf("config %s: %d containers", path, len(cfg.Container))
	if b.opts.PID1 {
		name := cfg.Hostname
		if name == "" {
			name = "berth"
		}
		if err := unix.Sethostname([]byte(name)); err != nil {
			b.log.Printf("warning: set hostname %q: %v", name, err)
		}
	}
	return nil
}

// goSafe runs f on a new goroutine whose panic becomes a fatal error
// instead of the end of PID 1.
func (b *booter) goSafe(f func()) {
	go func() {
		defer func() {
			if r := recover(); r != nil {
				select {
				case b.fatal <- fmt.Errorf("panic: %v\n%s", r, debug.Stack()):
				default:
				}
			}
		}()
		f()
	}()
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
