package container

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// spawn starts the container's init by executing berth again (a user
// namespace, or where the direct start is not taken) and returns once the
// workload has been exec'd: 3. the init's fds and clone attributes,
// 4–5. what is done while it starts, 6. its config, 7. its answer.
func (c *Container) spawn(layout *Layout, cfg initConfig, opts Options) error {
	exe, err := selfExe()
	if err != nil {
		return setupError(err)
	}
	sf := &spawnFiles{}
	defer sf.close()
	if err := sf.open(c, &cfg, opts); err != nil {
		return setupError(err)
	}
	sys, err := sf.attr(layout, cfg.Spec, opts)
	if err != nil {
		return setupError(err)
	}
	pidfd := -1
	sys.PidFD = &pidfd
	defer func() {
		if c.pidfd == nil && pidfd >= 0 {
			syscall.Close(pidfd)
		}
	}()
	env := []string{"GOMAXPROCS=1", "GOGC=off"}
	if tracing {
		env = append(env, "BERTH_TRACE=1")
	}
	attr := &syscall.ProcAttr{Env: env, Files: sf.files, Sys: sys}
	// Pdeathsig belongs to the thread that forks: keep it for the call.
	runtime.LockOSThread()
	pid, err := syscall.ForkExec(exe, []string{"berth", InitArg, cfg.Spec.Name}, attr)
	runtime.UnlockOSThread()
	sf.cfgR.Close()
	sf.errW.Close()
	// The init's ends of the socket pairs too: an init that dies before
	// it sends then reads as an end of file, not a receive for ever.
	for _, f := range sf.childEnds {
		f.Close()
	}
	if err != nil {
		return setupError(fmt.Errorf("start container init: %w", err))
	}
	trace("clone")
	if err := c.runInit(pid, cfg, opts, sf); err != nil {
		killStarted(pid, opts)
		return err
	}
	c.Pid = pid
	if pidfd >= 0 {
		c.pidfd = os.NewFile(uintptr(pidfd), "pidfd")
	}
	return nil
}

// spawnFiles are the parent's ends of what a spawned init is handed, and
// what the parent closes once the init has started (or failed to).
type spawnFiles struct {
	files      []uintptr // the init's fds, in order
	cfgR, cfgW *os.File  // the config pipe
	errR, errW *os.File  // the error pipe
	ptyParent  *os.File  // with a terminal: where the init sends the pty
	early      []string  // v1 cgroups the parent moves the init into
	hm         *hostMounts
	closers    []io.Closer
	childEnds  []*os.File // the init's ends of the socket pairs
	// landlockParent, with Landlock, is where the init sends its ruleset.
	landlockParent *os.File
}

// open makes the init's fds: stdio, the two pipes, the cgroup.procs files
// it joins itself, the pty socket, the host mounts, the tiny init. cfg
// gets their numbers.
func (sf *spawnFiles) open(c *Container, cfg *initConfig, opts Options) error {
	var err error
	if sf.cfgR, sf.cfgW, err = os.Pipe(); err != nil {
		return fmt.Errorf("config pipe: %w", err)
	}
	sf.closers = append(sf.closers, sf.cfgR, sf.cfgW)
	if sf.errR, sf.errW, err = os.Pipe(); err != nil {
		return fmt.Errorf("error pipe: %w", err)
	}
	sf.closers = append(sf.closers, sf.errR, sf.errW)
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	sf.closers = append(sf.closers, null)
	for _, f := range []*os.File{opts.Stdin, opts.Stdout, opts.Stderr} {
		if f == nil {
			f = null
		}
		sf.files = append(sf.files, f.Fd())
	}
	sf.files = append(sf.files, sf.cfgR.Fd(), sf.errW.Fd())
	// The init joins its cgroup itself, last thing before it drops its
	// privileges, through cgroup.procs files opened here: writes through
	// them are checked against the opener's credentials, so this works
	// from a user namespace too.
	var late []string
	late, sf.early = c.cgroup.lateDirs()
	for _, dir := range late {
		f, err := os.OpenFile(filepath.Join(dir, "cgroup.procs"), os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("open cgroup %s: %w", dir, err)
		}
		sf.closers = append(sf.closers, f)
		cfg.CgroupFds = append(cfg.CgroupFds, len(sf.files))
		sf.files = append(sf.files, f.Fd())
	}
	if cfg.Spec.TTY {
		if sf.ptyParent, cfg.PTYFd, err = sf.socket("pty socket"); err != nil {
			return err
		}
	}
	if cfg.Spec.Landlock != nil {
		if sf.landlockParent, cfg.LandlockFd, err = sf.socket("landlock socket"); err != nil {
			return err
		}
	}
	if sf.hm, err = prepareHostMounts(cfg.Spec, cfg.Devices); err != nil {
		return err
	}
	if sf.files, err = sf.hm.pass(sf.files, cfg); err != nil {
		return err
	}
	if cfg.Spec.Init {
		f, err := tinyInitExe()
		if err != nil {
			return err
		}
		cfg.InitExeFd = len(sf.files)
		sf.files = append(sf.files, f.Fd())
	}
	return nil
}

// socket makes a socket pair: it returns berth's end and the init's fd
// of the other.
func (sf *spawnFiles) socket(name string) (*os.File, int, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", name, err)
	}
	parent, child := os.NewFile(uintptr(pair[0]), name), os.NewFile(uintptr(pair[1]), name)
	sf.closers = append(sf.closers, parent, child)
	sf.childEnds = append(sf.childEnds, child)
	sf.files = append(sf.files, child.Fd())
	return parent, len(sf.files) - 1, nil
}

// attr is the init's clone: its namespaces, id maps, parent-death signal
// and, on cgroup v2, the setup cgroup it is born in.
func (sf *spawnFiles) attr(layout *Layout, spec Spec, opts Options) (*syscall.SysProcAttr, error) {
	flags := syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC
	if spec.Net != "host" {
		flags |= syscall.CLONE_NEWNET
	}
	// A session of its own, without berth's controlling terminal (see
	// child.go); with a terminal, the init makes its session itself
	// (setupPTY).
	sys := &syscall.SysProcAttr{Cloneflags: uintptr(flags), Setsid: !spec.TTY}
	if spec.UserNS != nil {
		sys.Cloneflags |= syscall.CLONE_NEWUSER
		sys.UidMappings = idMaps(spec.UserNS.UIDMap)
		sys.GidMappings = idMaps(spec.UserNS.GIDMap)
		sys.GidMappingsEnableSetgroups = true
		// The init must become the namespace's root before it execs:
		// berth's own uid is not mapped, and an unmapped process keeps no
		// capability across exec.
		sys.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	if opts.DieWithParent {
		sys.Pdeathsig = syscall.SIGKILL
	}
	if layout.Version == 2 {
		// clone3(CLONE_INTO_CGROUP): the init is born in the setup
		// cgroup, outside berth's own and outside the container's, where
		// its threads and heap would count against the container's
		// pids.max and memory.max.
		cgfd, err := os.Open(layout.setupCgroup())
		if err != nil {
			return nil, fmt.Errorf("open setup cgroup: %w", err)
		}
		sf.closers = append(sf.closers, cgfd)
		sys.UseCgroupFD = true
		sys.CgroupFD = int(cgfd.Fd())
	}
	return sys, nil
}

// close closes the parent's ends and releases the host mounts.
func (sf *spawnFiles) close() {
	for _, c := range sf.closers {
		c.Close()
	}
	if sf.hm != nil {
		sf.hm.close()
	}
}

// runInit does the parent's part while the spawned init starts, then
// hands it its config and waits for its answer.
func (c *Container) runInit(pid int, cfg initConfig, opts Options, sf *spawnFiles) error {
	spec := cfg.Spec
	// 4. On a bridge, the veth pair, its peer born in the init's network
	// namespace; the init configures it once it has its config.
	if spec.Net == "bridge" {
		if err := opts.Network.attach(pid); err != nil {
			return setupError(err)
		}
		trace("veth")
	}

	// 5. The v1 hierarchies that limit nothing the init does are joined
	// now, while the init starts up (a cgroup migration may wait for an
	// RCU grace period); the init waits for its config, so it does no
	// work outside them.
	for _, dir := range sf.early {
		if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return setupError(err)
		}
	}
	trace("early-cgroups")

	// 5b. In a user namespace, the root filesystem shows the ids it
	// would show without one (idmap.go).
	if spec.UserNS != nil {
		if err := idmapRootfs(sf.hm, spec, pid); err != nil {
			return setupError(err)
		}
	}

	// 6. The config; the init then builds the container and joins the
	// rest of its cgroup just before the workload runs.
	if err := json.NewEncoder(sf.cfgW).Encode(cfg); err != nil {
		return setupError(fmt.Errorf("send config to container init: %w", err))
	}
	sf.cfgW.Close()
	trace("config-sent")
	if initConfigSent != nil {
		initConfigSent(pid)
	}

	// 7. The error pipe is close-on-exec: EOF without a message means the
	// workload was exec'd.
	msg, _ := io.ReadAll(io.LimitReader(sf.errR, 64<<10))
	if len(msg) > 0 {
		return decodeInitError(msg)
	}
	if sf.ptyParent != nil {
		master, err := recvFd(sf.ptyParent)
		if err != nil {
			return setupError(fmt.Errorf("receive pty: %w", err))
		}
		c.PTY = master
	}
	if sf.landlockParent != nil {
		var err error
		if c.landlock, err = recvRuleset(sf.landlockParent, spec.Landlock); err != nil {
			if c.PTY != nil {
				c.PTY.Close()
				c.PTY = nil
			}
			return setupError(err)
		}
	}
	return nil
}

// killStarted kills the first process of a start that failed, and reaps
// it unless a global reaper (PID 1) does.
func killStarted(pid int, opts Options) {
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if opts.ExternalReaper {
		return
	}
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			return
		}
	}
}

// initConfigSent, set by tests, runs in berth once the init has its
// config, before berth reads what the init hands back.
var initConfigSent func(pid int)
