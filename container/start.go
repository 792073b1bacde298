package container

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/container/seccomp"
)

// InitArg is argv[1] of the berth process that runs as a container's init.
// main checks for it before anything else and calls Init.
const InitArg = "__container-init"

// Options are the caller's side of a start: where stdio goes and who reaps.
type Options struct {
	// Stdin, Stdout and Stderr become the workload's fds 0-2; nil means
	// /dev/null. Ignored with Spec.TTY, where a new pty is the stdio.
	Stdin, Stdout, Stderr *os.File
	// ExternalReaper is set when a global reaper (PID 1) collects every
	// exit status: Start then never waits for a child itself.
	ExternalReaper bool
	// DieWithParent kills the container when the calling thread exits
	// (for berth run; PID 1 never exits).
	DieWithParent bool
	// Network attaches a net = "bridge" container; required for one,
	// ignored for the others.
	Network *Network
	// Rows and Cols, with Spec.TTY, are the terminal's size, set before
	// the workload runs (as ExecOptions' for an exec).
	Rows, Cols uint16
}

// StartError is a failure to start the workload. Code is the exit status a
// shell would give for it: 127 when the command does not exist, 126 when
// it cannot be executed, 125 for any other setup failure.
type StartError struct {
	Code int
	Err  error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

func setupError(err error) error { return &StartError{125, err} }

// initConfig is what the parent sends to the container's init on its
// config pipe: the spec with everything the init needs resolved.
type initConfig struct {
	Spec    Spec     `json:"spec"`
	Caps    []string `json:"caps"`
	Devices []Device `json:"devices,omitempty"`
	// Seccomp is the compiled filter; nil for unconfined. SeccompFlags
	// are the SECCOMP_FILTER_FLAG_* bits of the profile's flags, which
	// its install passes on (TSYNC is always set).
	Seccomp      []unix.SockFilter `json:"seccomp,omitempty"`
	SeccompFlags uint              `json:"seccomp_flags,omitempty"`
	// CgroupVersion and CgroupV1 say which cgroup hierarchies to mount
	// inside the container.
	CgroupVersion int       `json:"cgroup_version"`
	CgroupV1      []v1Mount `json:"cgroup_v1,omitempty"`
	// CgroupFds are the init's fds of the container cgroup's cgroup.procs
	// files (one per hierarchy), opened by the parent; PTYFd is the pty
	// socket, or 0; LandlockFd, with Spec.Landlock, the socket the init
	// hands berth its Landlock ruleset on (sendRuleset), or 0.
	CgroupFds  []int `json:"cgroup_fds"`
	PTYFd      int   `json:"pty_fd,omitempty"`
	LandlockFd int   `json:"landlock_fd,omitempty"`
	// PTYRows and PTYCols are the terminal's size (Options.Rows, Cols).
	PTYRows uint16 `json:"pty_rows,omitempty"`
	PTYCols uint16 `json:"pty_cols,omitempty"`
	// RootfsFd, MountFds and DeviceFds are the init's fds of the detached
	// mounts the parent prepared (see hostmounts.go): the rootfs, each
	// spec mount's bind source (-1 for a tmpfs) and, in a user namespace,
	// each device node.
	RootfsFd  int   `json:"rootfs_fd"`
	MountFds  []int `json:"mount_fds,omitempty"`
	DeviceFds []int `json:"device_fds,omitempty"`
	// InitExeFd, with Spec.Init, is the init's fd of the tiny init's
	// binary (tinyinit.go).
	InitExeFd int `json:"init_exe_fd,omitempty"`
	// Net is eth0's configuration on a bridge.
	Net   *initNet `json:"net,omitempty"`
	Trace bool     `json:"trace,omitempty"`
	// warnings are what the start tells its caller (Container.Warnings).
	warnings []string
}

// v1Mount is a v1 hierarchy as the container sees it: mounted at
// /sys/fs/cgroup/Dir with the controllers in Data, and a symlink per
// controller when several share it ("cpu" -> "cpu,cpuacct").
type v1Mount struct {
	Dir   string   `json:"dir"`
	Data  string   `json:"data"`
	Links []string `json:"links,omitempty"`
}

// The init's fds after stdio: the config pipe and the error pipe; the
// cgroup.procs fds and the pty socket follow (see initConfig).
const (
	initConfigFd = 3
	initErrorFd  = 4
)

// startAttempts bounds the starts of one Start when a bind source is
// replaced under each (errSourceReplaced).
const startAttempts = 3

// afterHostMounts, when set (tests), runs once a start has opened the
// host side of its mounts.
var afterHostMounts func()

// Start creates the container's cgroup and namespaces, starts its first
// process and returns once the workload has been exec'd. On error nothing
// is left behind: no cgroup, no process, no thread in its namespaces. A
// start whose bind source was replaced while it ran is made again, with
// the source opened anew, up to startAttempts times in all.
func Start(layout *Layout, spec Spec, opts Options) (*Container, error) {
	for attempt := 1; ; attempt++ {
		c, err := start(layout, spec, opts)
		if err == nil || attempt == startAttempts || !errors.Is(err, errSourceReplaced) {
			return c, err
		}
		trace("retry")
	}
}

// start is one attempt of Start.
func start(layout *Layout, spec Spec, opts Options) (*Container, error) {
	trace("start")
	// The thread of a direct start gets going while the parent works.
	var b *builder
	if spec.UserNS == nil {
		b = newBuilder()
		defer b.release()
	}

	// 1. Check the spec and resolve what the init needs.
	cfg, err := resolve(layout, spec, opts.Network)
	if err != nil {
		return nil, setupError(err)
	}
	trace("resolve")
	if spec.TTY {
		cfg.PTYRows, cfg.PTYCols = opts.Rows, opts.Cols
	}

	// 2. Create the cgroup, with limits and device rules, before anything
	// runs in it.
	cg, err := layout.newCgroup(spec.CgroupName(), spec.Limits, deviceRules(cfg.Devices))
	if err != nil {
		return nil, setupError(err)
	}
	trace("cgroup")
	c := &Container{Spec: cfg.Spec, cgroup: cg, cfg: cfg, Warnings: cfg.warnings}
	cfg.CgroupV1 = c.v1Mounts()

	// 3. Start the container's first process in new namespaces: without
	// a user namespace directly (direct.go), with one through berth
	// re-executed as the container's init, handed its config.
	if b != nil {
		err = c.spawnDirect(layout, cfg, opts, b)
	} else {
		err = c.spawn(layout, cfg, opts)
	}
	if err != nil {
		if cfg.Net != nil {
			_ = opts.Network.detach() // the veth of a child that never ran
		}
		cg.destroy()
		return nil, err
	}
	c.Started = time.Now()
	trace("exec-seen")
	return c, nil
}

// resolve validates spec (Spec.Validate, then what depends on this
// machine) and fills in defaults, capabilities, devices, the compiled
// seccomp filter and, on a bridge, the network files' mounts and eth0's
// configuration.
func resolve(layout *Layout, spec Spec, nw *Network) (initConfig, error) {
	cfg := initConfig{CgroupVersion: layout.Version, Trace: tracing}
	if err := spec.Validate(); err != nil {
		return cfg, err
	}
	if err := spec.Limits.CheckMachine(); err != nil {
		return cfg, err
	}
	if err := checkLSMs(spec); err != nil {
		return cfg, err
	}
	if fi, err := os.Stat(spec.Rootfs); err != nil || !fi.IsDir() {
		return cfg, fmt.Errorf("rootfs %s is not a directory", spec.Rootfs)
	}
	if spec.Hostname == "" {
		spec.Hostname = spec.Name
	}
	if spec.Net == "" {
		spec.Net = "none"
	}
	if spec.Net == "bridge" {
		if err := nw.check(); err != nil {
			return cfg, err
		}
		spec.Mounts = append(spec.Mounts[:len(spec.Mounts):len(spec.Mounts)], nw.mounts(spec)...)
		cfg.Net = &initNet{Address: nw.Address, Gateway: nw.Gateway}
	}
	for _, p := range spec.Devices {
		d, err := LookupDevice(p)
		if err != nil {
			return cfg, err
		}
		cfg.Devices = append(cfg.Devices, d)
	}
	cfg.Caps = spec.Caps
	if cfg.Caps == nil {
		cfg.Caps = DefaultCaps
	}
	filter, err := seccompFilter(spec.Seccomp, cfg.Caps)
	if err != nil {
		return cfg, err
	}
	if err := seccomp.CheckFlags(filter.flags); err != nil {
		return cfg, fmt.Errorf("seccomp profile %s: %w", profileName(spec.Seccomp), err)
	}
	if w := filter.warning(spec.Seccomp); w != "" {
		cfg.warnings = append(cfg.warnings, w)
	}
	prog := filter.prog
	if spec.AllowNewPrivileges && len(prog) > 0 {
		// Installed before the credentials are set, in either start
		// path (newExecPlan checks an exec's, with its user).
		_, drop, err := capSets(cfg.Caps)
		if err != nil {
			return cfg, err
		}
		if err := checkEarlyFilter(prog, spec.User, drop); err != nil {
			return cfg, err
		}
	}
	cfg.Seccomp, cfg.SeccompFlags = prog, filter.flags
	cfg.Spec = spec
	return cfg, nil
}

// v1Mounts lists the v1 hierarchies of the container's cgroup.
func (c *Container) v1Mounts() []v1Mount {
	var out []v1Mount
	for point, ctls := range c.cgroup.layout.Hierarchies {
		m := v1Mount{Dir: baseName(point), Data: strings.Join(ctls, ",")}
		for _, ctl := range ctls {
			if ctl != m.Dir {
				m.Links = append(m.Links, ctl)
			}
		}
		out = append(out, m)
	}
	return out
}

func baseName(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

func idMaps(ms []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(ms))
	for i, m := range ms {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.Container), HostID: int(m.Host), Size: int(m.Size)}
	}
	return out
}

// decodeInitError turns the init's "CODE message" report into a StartError.
func decodeInitError(msg []byte) error {
	code, text, ok := strings.Cut(string(msg), " ")
	if !ok {
		return &StartError{Code: 125, Err: errors.New(strings.TrimSpace(string(msg)))}
	}
	text = strings.TrimSpace(text)
	e := &StartError{Code: 125, Err: errors.New(text)}
	if strings.Contains(text, errSourceReplaced.Error()) {
		e.Err = &textError{text, errSourceReplaced}
	}
	switch code {
	case "126":
		e.Code = 126
	case "127":
		e.Code = 127
	}
	return e
}

// textError is an error the init reported as text, which still says
// (Unwrap) what it was.
type textError struct {
	text string
	err  error
}

func (e *textError) Error() string { return e.text }
func (e *textError) Unwrap() error { return e.err }
