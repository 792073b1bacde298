package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"berth/container"
	"berth/image"
)

// berth run's own failures use the statuses docker and podman use, so a
// caller can tell them from the workload's status.
const (
	exitRunError = 125 // berth could not set up the container
)

// listFlag is a repeatable flag; commas also separate values when split.
type listFlag struct {
	vals  []string
	split bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }
func (l *listFlag) Set(v string) error {
	if l.split {
		l.vals = append(l.vals, strings.Split(v, ",")...)
	} else {
		l.vals = append(l.vals, v)
	}
	return nil
}

// runFlags are berth run's flags; each mirrors a [[container]] config key.
type runFlags struct {
	fs                                             *flag.FlagSet
	memory, memoryHigh, memorySwap, hostname, name *string
	net, user, workdir, seccomp, cpuset            *string
	pids                                           *int64
	cpus                                           *float64
	cpuWeight, ioWeight                            *uint64
	oomScoreAdj                                    *int
	userns, readOnly, noNewPrivs, tty              *bool
	env, mounts, tmpfs, devices, capAdd, capDrop   listFlag
	uidMap, gidMap, groups, ulimits, ioMax         listFlag
}

func newRunFlags() *runFlags {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	f := &runFlags{fs: fs}
	f.memory = fs.String("memory", "", "memory limit, e.g. 64M (K, M, G: powers of 1024)")
	f.memoryHigh = fs.String("memory-high", "", "memory throttling threshold (memory.high)")
	f.memorySwap = fs.String("memory-swap", "", "swap allowed beyond --memory, or 'unlimited' (default none)")
	f.pids = fs.Int64("pids", 0, "maximum number of processes and threads")
	f.cpus = fs.Float64("cpus", 0, "CPU time limit in CPUs, e.g. 0.5")
	f.cpuWeight = fs.Uint64("cpu-weight", 0, "relative CPU weight, 1-10000")
	f.cpuset = fs.String("cpuset-cpus", "", "CPUs to run on, e.g. 0-1")
	f.ioWeight = fs.Uint64("io-weight", 0, "relative block I/O weight, 1-10000")
	fs.Var(&f.ioMax, "io-max", "I/O limit 'MAJ:MIN rbps=N wbps=N riops=N wiops=N' (repeatable)")
	f.hostname = fs.String("hostname", "", "the container's hostname (default: its name)")
	f.name = fs.String("name", "", "container name, naming its cgroup (default: run-PID)")
	f.net = fs.String("net", "none", "network: none (own namespace, lo up) or host")
	f.userns = fs.Bool("userns", false, "run in a new user namespace (default map "+container.DefaultIDMap+")")
	fs.Var(&f.uidMap, "uid-map", "user namespace uid map CONTAINER:HOST:SIZE (repeatable)")
	fs.Var(&f.gidMap, "gid-map", "user namespace gid map CONTAINER:HOST:SIZE (repeatable)")
	f.readOnly = fs.Bool("read-only", false, "mount the root filesystem read-only")
	fs.Var(&f.mounts, "mount", "bind mount SOURCE:TARGET[:ro] (repeatable)")
	fs.Var(&f.tmpfs, "tmpfs", "tmpfs mount TARGET[:SIZE] (repeatable)")
	fs.Var(&f.devices, "device", "pass a host device through, e.g. /dev/ttyUSB0 (repeatable)")
	f.capAdd, f.capDrop = listFlag{split: true}, listFlag{split: true}
	fs.Var(&f.capAdd, "cap-add", "add capabilities (names without CAP_, or ALL)")
	fs.Var(&f.capDrop, "cap-drop", "drop capabilities (names without CAP_, or ALL)")
	f.noNewPrivs = fs.Bool("no-new-privileges", true, "set no_new_privs (--no-new-privileges=false to allow setuid gains)")
	f.user = fs.String("user", "", "UID[:GID] to run as")
	fs.Var(&f.groups, "group-add", "supplementary group id (repeatable)")
	fs.Var(&f.ulimits, "ulimit", "resource limit NAME=SOFT[:HARD], e.g. nofile=1024 (repeatable)")
	f.oomScoreAdj = fs.Int("oom-score-adj", 0, "oom_score_adj of the workload, -1000..1000")
	f.workdir = fs.String("workdir", "", "working directory inside the container (default /)")
	fs.Var(&f.env, "env", "environment variable K=V (repeatable)")
	f.seccomp = fs.String("seccomp", "default", "seccomp profile: default, unconfined, or a Docker/OCI JSON file")
	f.tty = fs.Bool("t", false, "give the command an interactive terminal")
	return f
}

// spec builds the container spec from the flags.
func (f *runFlags) spec(cmd []string) (container.Spec, error) {
	s := container.Spec{
		Name: *f.name, Args: cmd, Hostname: *f.hostname, Net: *f.net, ReadonlyRoot: *f.readOnly,
		Devices: f.devices.vals, Cwd: *f.workdir, Env: f.env.vals, Seccomp: *f.seccomp, TTY: *f.tty,
		AllowNewPrivileges: !*f.noNewPrivs,
	}
	if s.Name == "" {
		s.Name = "run-" + strconv.Itoa(os.Getpid())
	}
	l := &s.Limits
	l.Pids, l.CPUs, l.CPUWeight, l.CPUSet, l.IOWeight, l.IOMax = *f.pids, *f.cpus, *f.cpuWeight, *f.cpuset, *f.ioWeight, f.ioMax.vals
	for _, sz := range []struct {
		flag, v string
		dst     *int64
	}{{"memory", *f.memory, &l.Memory}, {"memory-high", *f.memoryHigh, &l.MemoryHigh}, {"memory-swap", *f.memorySwap, &l.MemorySwap}} {
		if sz.v == "" {
			continue
		}
		if sz.v == "unlimited" && sz.flag == "memory-swap" {
			*sz.dst = -1
			continue
		}
		n, err := container.ParseSize(sz.v)
		if err != nil {
			return s, fmt.Errorf("--%s: %v", sz.flag, err)
		}
		*sz.dst = n
	}
	if err := l.Check(); err != nil {
		return s, err
	}
	if *f.userns || len(f.uidMap.vals) > 0 || len(f.gidMap.vals) > 0 {
		ns := &container.UserNS{}
		for _, m := range orDefaultMap(f.uidMap.vals) {
			im, err := container.ParseIDMap(m)
			if err != nil {
				return s, fmt.Errorf("--uid-map: %v", err)
			}
			ns.UIDMap = append(ns.UIDMap, im)
		}
		for _, m := range orDefaultMap(f.gidMap.vals) {
			im, err := container.ParseIDMap(m)
			if err != nil {
				return s, fmt.Errorf("--gid-map: %v", err)
			}
			ns.GIDMap = append(ns.GIDMap, im)
		}
		s.UserNS = ns
	}
	for _, m := range f.mounts.vals {
		parts := strings.Split(m, ":")
		if len(parts) < 2 || len(parts) > 3 || (len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw") {
			return s, fmt.Errorf("--mount %q: want SOURCE:TARGET[:ro]", m)
		}
		s.Mounts = append(s.Mounts, container.Mount{Source: parts[0], Target: parts[1], Readonly: len(parts) == 3 && parts[2] == "ro"})
	}
	for _, m := range f.tmpfs.vals {
		target, size, _ := strings.Cut(m, ":")
		tm := container.Mount{Type: "tmpfs", Target: target}
		if size != "" {
			n, err := container.ParseSize(size)
			if err != nil {
				return s, fmt.Errorf("--tmpfs %q: %v", m, err)
			}
			tm.Size = n
		}
		s.Mounts = append(s.Mounts, tm)
	}
	for _, m := range s.Mounts {
		if err := container.CheckMount(m); err != nil {
			return s, err
		}
	}
	caps, err := container.ResolveCaps(f.capAdd.vals, f.capDrop.vals)
	if err != nil {
		return s, err
	}
	s.Caps = caps
	if *f.user != "" {
		if s.User, err = container.ParseUser(*f.user); err != nil {
			return s, err
		}
	}
	for _, g := range f.groups.vals {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return s, fmt.Errorf("--group-add %q: want a numeric group id", g)
		}
		s.User.Groups = append(s.User.Groups, uint32(n))
	}
	for _, u := range f.ulimits.vals {
		name, value, ok := strings.Cut(u, "=")
		if !ok {
			return s, fmt.Errorf("--ulimit %q: want NAME=SOFT[:HARD]", u)
		}
		r, err := container.ParseRlimit(name, value)
		if err != nil {
			return s, err
		}
		s.Rlimits = append(s.Rlimits, r)
	}
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "oom-score-adj" {
			v := *f.oomScoreAdj
			s.OOMScoreAdj = &v
		}
	})
	return s, nil
}

func orDefaultMap(m []string) []string {
	if len(m) == 0 {
		return []string{container.DefaultIDMap}
	}
	return m
}

func runMain(args []string) int {
	container.Trace("main")
	f := newRunFlags()
	f.fs.Usage = func() {
		fmt.Fprintln(f.fs.Output(), "usage: berth run [FLAGS] ROOTFS -- CMD [ARG...]\n\nROOTFS is a directory or an image file (unpacked to a temporary directory first).\nExit status: CMD's, 128+N when signal N killed it, 125 setup failed, 126 CMD not executable, 127 CMD not found.")
		f.fs.PrintDefaults()
	}
	if err := f.fs.Parse(args); err != nil {
		return exitUsage
	}
	rest := f.fs.Args()
	if len(rest) < 2 || (rest[1] == "--" && len(rest) < 3) {
		f.fs.Usage()
		return exitUsage
	}
	rootfs, cmd := rest[0], rest[1:]
	if cmd[0] == "--" {
		cmd = cmd[1:]
	}
	spec, err := f.spec(cmd)
	if err != nil {
		errorf("%v", err)
		return exitUsage
	}
	dir, cleanup, err := rootfsDir(rootfs)
	if err != nil {
		errorf("%v", err)
		return exitRunError
	}
	defer cleanup()
	spec.Rootfs = dir
	return runContainer(spec)
}

// runContainer starts spec with berth's own stdio (or a terminal with -t),
// forwards signals to the container's first process and returns the exit
// status to report.
func runContainer(spec container.Spec) int {
	layout, err := container.DetectCgroups()
	if err != nil {
		errorf("%v", err)
		return exitRunError
	}
	// Cgroups of berth runs that were killed; nothing here depends on it.
	go layout.CleanStale(false)
	// Signals for the container are caught before it exists, so none is
	// lost between the start and the forwarding loop.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	defer signal.Stop(sigs)

	c, err := container.Start(layout, spec, container.Options{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, DieWithParent: true,
	})
	if err != nil {
		errorf("container %s: %v", spec.Name, err)
		var se *container.StartError
		if errors.As(err, &se) {
			return se.Code
		}
		return exitRunError
	}
	var term *terminal
	if c.PTY != nil {
		term = attachTerminal(c.PTY)
		defer term.restore()
	}
	go func() {
		for s := range sigs {
			if s == syscall.SIGWINCH {
				term.resize()
				continue
			}
			_ = c.Signal(s.(syscall.Signal))
		}
	}()
	exit, err := c.Wait()
	if err != nil {
		errorf("%v", err)
	}
	if exit.OOM() || exit.Signal != 0 {
		errorf("%s", exit)
	}
	return exit.Status()
}

// rootfsDir returns ROOTFS as a directory: itself, or an image file
// unpacked into a fresh temporary directory that cleanup removes.
func rootfsDir(path string) (dir string, cleanup func(), err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", nil, fmt.Errorf("rootfs: %w", err)
	}
	if fi.IsDir() {
		return path, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "berth-run-")
	if err != nil {
		return "", nil, fmt.Errorf("rootfs: %w", err)
	}
	cleanup = func() { os.RemoveAll(tmp) }
	dir = filepath.Join(tmp, "rootfs")
	if _, err := image.Unpack(path, dir, image.UnpackOptions{}); err != nil {
		cleanup()
		return "", nil, err
	}
	return dir, cleanup, nil
}
