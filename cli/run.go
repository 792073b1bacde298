package cli

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"berth/board"
	"berth/boot"
	"berth/container"
)

// berth run's own failures use the statuses docker and podman use, so a
// caller can tell them from the workload's.
const (
	exitRunError = 125 // berth could not set up the container
)

// runFlags are berth run's flags; each mirrors a [[container]] config key.
type runFlags struct {
	cmd                                            *command
	memory, memoryHigh, memorySwap, hostname, name *string
	net, user, workdir, seccomp, cpuset, entrypt   *string
	pids                                           *int64
	cpus                                           *float64
	cpuWeight, ioWeight                            *uint64
	oomScoreAdj                                    *int
	userns, readOnly, noNewPrivs, tty, init        *bool
	env, mounts, tmpfs, devices, capAdd, capDrop   listFlag
	uidMap, gidMap, groups, ulimits, ioMax         listFlag
	publish                                        listFlag
}

const runAbout = `ROOTFS is a directory, or an image file or OCI layout (unpacked to a
temporary directory first) whose config gives the defaults: CMD replaces
its Cmd, not its Entrypoint; without CMD it runs Entrypoint and Cmd.
Flags may come anywhere before CMD; "--" before CMD is optional.
Exit status: CMD's, 128+N when signal N killed it, 125 setup failed,
126 CMD not executable, 127 CMD not found, 2 bad flags or values.`

func newRunFlags(c *ctx) *runFlags {
	cmd := c.command("run", "[FLAGS] ROOTFS [--] [CMD [ARG...]]", runAbout)
	fs := cmd.fs
	f := &runFlags{cmd: cmd}
	f.memory = fs.String("memory", "", "memory limit, e.g. 64M (K, M, G: powers of 1024; at least 256K)")
	f.memoryHigh = fs.String("memory-high", "", "memory throttling threshold (memory.high)")
	f.memorySwap = fs.String("memory-swap", "", "swap allowed beyond --memory, or 'unlimited' (default none)")
	f.pids = fs.Int64("pids", 0, "maximum number of processes and threads (0: no limit)")
	f.cpus = fs.Float64("cpus", 0, "CPU time limit in CPUs, e.g. 0.5 (0.01 to this machine's CPU count)")
	f.cpuWeight = fs.Uint64("cpu-weight", 0, "relative CPU weight, 1-10000")
	f.cpuset = fs.String("cpuset-cpus", "", "CPUs to run on, e.g. 0-1")
	f.ioWeight = fs.Uint64("io-weight", 0, "relative block I/O weight, 1-10000")
	fs.Var(&f.ioMax, "io-max", "I/O limit 'MAJ:MIN rbps=N wbps=N riops=N wiops=N' (repeatable)")
	f.hostname = fs.String("hostname", "", "the container's hostname (default: its name)")
	f.name = fs.String("name", "", "container name, naming its cgroup (default: run-PID)")
	f.net = fs.String("net", "none", "network: none (own namespace, lo up), host, or bridge (eth0 on berth0, "+board.DefaultBridgePrefix+")")
	fs.Var(&f.publish, "p", "publish a port of a bridge container HOST:CONTAINER[/tcp|/udp] (repeatable)")
	fs.Var(&f.publish, "publish", "same as -p")
	f.userns = fs.Bool("userns", false, "run in a new user namespace (default map "+container.DefaultIDMap+")")
	fs.Var(&f.uidMap, "uid-map", "user namespace uid map CONTAINER:HOST:SIZE (repeatable; implies --userns)")
	fs.Var(&f.gidMap, "gid-map", "user namespace gid map CONTAINER:HOST:SIZE (repeatable; implies --userns)")
	f.readOnly = fs.Bool("read-only", false, "mount the root filesystem read-only")
	fs.Var(&f.mounts, "mount", "bind mount SOURCE:TARGET[:OPTIONS], options ro and follow (follow symlinks on SOURCE's path, refused without it), comma-separated (repeatable)")
	fs.Var(&f.tmpfs, "tmpfs", "tmpfs mount TARGET[:SIZE] (repeatable)")
	fs.Var(&f.devices, "device", "pass a host device through, e.g. /dev/ttyUSB0 (repeatable)")
	f.capAdd, f.capDrop = listFlag{split: true}, listFlag{split: true}
	fs.Var(&f.capAdd, "cap-add", "add capabilities (names without CAP_, or ALL)")
	fs.Var(&f.capDrop, "cap-drop", "drop capabilities (names without CAP_, or ALL)")
	f.noNewPrivs = fs.Bool("no-new-privileges", true, "set no_new_privs (--no-new-privileges=false to allow setuid gains)")
	f.user = fs.String("user", "", "UID[:GID] to run as (numeric; default: the image's User)")
	f.entrypt = fs.String("entrypoint", "", "replace the image's Entrypoint (and drop its Cmd); \"\" for none")
	fs.Var(&f.groups, "group-add", "supplementary group id (repeatable)")
	fs.Var(&f.ulimits, "ulimit", "resource limit NAME=SOFT[:HARD], e.g. nofile=1024 (repeatable)")
	f.oomScoreAdj = fs.Int("oom-score-adj", 0, "oom_score_adj of the workload, -1000..1000")
	f.workdir = fs.String("workdir", "", "working directory inside the container (default: the image's, or /)")
	fs.Var(&f.env, "env", "environment variable K=V (repeatable)")
	f.seccomp = fs.String("seccomp", "default", "seccomp profile: default, unconfined, or a Docker/OCI JSON file")
	f.tty = fs.Bool("t", false, "give the command an interactive terminal")
	f.init = fs.Bool("init", false, "run berth's tiny init as PID 1: it forwards signals to CMD and reaps orphans")
	return f
}

// flagOfKey names the flag behind a config key of Spec.Validate's errors:
// pairs of key and flag (data, where a map is built at every start).
var flagOfKey = [...][2]string{
	{"name", "--name"}, {"command", "CMD"}, {"env", "--env"}, {"workdir", "--workdir"}, {"hostname", "--hostname"},
	{"net", "--net"}, {"uid_map", "--uid-map"}, {"gid_map", "--gid-map"}, {"user", "--user"}, {"groups", "--group-add"},
	{"devices", "--device"}, {"cap_add", "--cap-add"}, {"cap_drop", "--cap-drop"}, {"oom_score_adj", "--oom-score-adj"},
	{"seccomp", "--seccomp"}, {"limits.memory", "--memory"}, {"limits.memory_high", "--memory-high"},
	{"limits.memory_swap", "--memory-swap"}, {"limits.cpus", "--cpus"}, {"limits.cpu_weight", "--cpu-weight"},
	{"limits.cpuset", "--cpuset-cpus"}, {"limits.pids", "--pids"}, {"limits.io_weight", "--io-weight"},
	{"limits.io_max", "--io-max"}, {"ports", "-p"},
}

// flagName turns a key of a container.FieldError into the flag a user gave.
func flagName(fe *container.FieldError, s container.Spec) string {
	if strings.HasPrefix(fe.Key, "rlimits.") {
		return "--ulimit " + strings.TrimPrefix(fe.Key, "rlimits.")
	}
	if strings.HasPrefix(fe.Key, "mount.") {
		if fe.Index >= 0 && fe.Index < len(s.Mounts) && s.Mounts[fe.Index].Type == "tmpfs" {
			return "--tmpfs"
		}
		return "--mount"
	}
	for _, kf := range flagOfKey {
		if kf[0] == fe.Key {
			return kf[1]
		}
	}
	return fe.Key
}

// spec builds the container spec from the flags and validates it
// (container.Spec.Validate, the config file's rules); errors name flags.
func (f *runFlags) spec(cmd []string) (container.Spec, error) {
	s := container.Spec{
		Name: *f.name, Args: cmd, Hostname: *f.hostname, Net: *f.net, Ports: f.publish.vals, ReadonlyRoot: *f.readOnly,
		Devices: f.devices.vals, Cwd: *f.workdir, Env: f.env.vals, Seccomp: *f.seccomp, TTY: *f.tty,
		AllowNewPrivileges: !*f.noNewPrivs, Init: *f.init,
	}
	// Its cgroup is its own whatever its name: a berth boot's container of
	// the same name keeps its cgroup, and a run that dies leaves one
	// CleanStale knows for stale.
	s.Cgroup = container.RunCgroup(os.Getpid())
	if s.Name == "" {
		s.Name = s.Cgroup
	}
	if err := f.convert(&s); err != nil {
		return s, err
	}
	var msgs []string
	for _, fe := range container.FieldErrors(s.Validate()) {
		if fe.Key == "command" && len(cmd) == 0 {
			continue // the image's, checked once it is unpacked
		}
		msgs = append(msgs, flagName(fe, s)+": "+fe.Msg)
	}
	for _, fe := range container.FieldErrors(s.Limits.CheckMachine()) {
		msgs = append(msgs, flagName(fe, s)+": "+fe.Msg)
	}
	if len(msgs) > 0 {
		return s, errors.New(strings.Join(msgs, "\n"))
	}
	return s, nil
}

// convert parses the flags whose values need parsing into s.
func (f *runFlags) convert(s *container.Spec) error {
	l := &s.Limits
	l.Pids, l.CPUSet, l.IOMax = *f.pids, *f.cpuset, f.ioMax.vals
	set := map[string]bool{}
	f.cmd.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["cpus"] {
		l.CPUs = f.cpus
	}
	if set["cpu-weight"] {
		l.CPUWeight = f.cpuWeight
	}
	if set["io-weight"] {
		l.IOWeight = f.ioWeight
	}
	if set["oom-score-adj"] {
		s.OOMScoreAdj = f.oomScoreAdj
	}
	for _, sz := range []struct {
		flag, v string
		dst     *int64
	}{{"memory", *f.memory, &l.Memory}, {"memory-high", *f.memoryHigh, &l.MemoryHigh}, {"memory-swap", *f.memorySwap, &l.MemorySwap}} {
		if sz.v == "unlimited" && sz.flag == "memory-swap" {
			*sz.dst = -1
			continue
		}
		if sz.v == "" {
			continue
		}
		n, err := container.ParseSize(sz.v)
		if err != nil {
			return fmt.Errorf("--%s: %v", sz.flag, err)
		}
		*sz.dst = n
	}
	if err := f.userNS(s); err != nil {
		return err
	}
	if err := f.mountList(s); err != nil {
		return err
	}
	caps, err := container.ResolveCaps(f.capAdd.vals, f.capDrop.vals)
	if err != nil {
		return fmt.Errorf("--%s", strings.Replace(err.Error(), "_", "-", 1))
	}
	s.Caps = caps
	if *f.user != "" {
		if s.User, err = container.ParseUser(*f.user); err != nil {
			return fmt.Errorf("--user: %v", err)
		}
	}
	for _, g := range f.groups.vals {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return fmt.Errorf("--group-add %q: want a numeric group id", g)
		}
		s.User.Groups = append(s.User.Groups, uint32(n))
	}
	for _, u := range f.ulimits.vals {
		name, value, ok := strings.Cut(u, "=")
		if !ok {
			return fmt.Errorf("--ulimit %q: want NAME=SOFT[:HARD]", u)
		}
		r, err := container.ParseRlimit(name, value)
		if err != nil {
			return fmt.Errorf("--ulimit: %v", err)
		}
		s.Rlimits = append(s.Rlimits, r)
	}
	return nil
}

// userNS converts --userns, --uid-map and --gid-map; maps imply --userns,
// as uid_map and gid_map do in the config.
func (f *runFlags) userNS(s *container.Spec) error {
	if !*f.userns && len(f.uidMap.vals) == 0 && len(f.gidMap.vals) == 0 {
		return nil
	}
	ns := &container.UserNS{}
	for _, m := range []struct {
		flag string
		vals []string
		dst  *[]container.IDMap
	}{{"--uid-map", f.uidMap.vals, &ns.UIDMap}, {"--gid-map", f.gidMap.vals, &ns.GIDMap}} {
		if len(m.vals) == 0 {
			m.vals = []string{container.DefaultIDMap}
		}
		for _, v := range m.vals {
			im, err := container.ParseIDMap(v)
			if err != nil {
				return fmt.Errorf("%s: %v", m.flag, err)
			}
			*m.dst = append(*m.dst, im)
		}
	}
	s.UserNS = ns
	return nil
}

// mountList converts --mount SRC:DST[:OPTIONS] and --tmpfs DST[:SIZE].
func (f *runFlags) mountList(s *container.Spec) error {
	for _, m := range f.mounts.vals {
		parts := strings.Split(m, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return fmt.Errorf("--mount %q: want SOURCE:TARGET[:ro][,follow]", m)
		}
		bm := container.Mount{Source: parts[0], Target: parts[1]}
		if len(parts) == 3 {
			for _, opt := range strings.Split(parts[2], ",") {
				switch opt {
				case "ro":
					bm.Readonly = true
				case "rw":
				case "follow":
					bm.FollowSymlink = true
				default:
					return fmt.Errorf("--mount %q: unknown option %q: want ro, rw or follow", m, opt)
				}
			}
		}
		s.Mounts = append(s.Mounts, bm)
	}
	for _, m := range f.tmpfs.vals {
		target, size, _ := strings.Cut(m, ":")
		tm := container.Mount{Type: "tmpfs", Target: target}
		if size != "" {
			n, err := container.ParseTmpfsSize(size)
			if err != nil {
				return fmt.Errorf("--tmpfs %q: %v", m, err)
			}
			tm.Size = n
		}
		s.Mounts = append(s.Mounts, tm)
	}
	return nil
}

func runMain(c *ctx, args []string) int {
	container.Trace("main")
	f := newRunFlags(c)
	pos, rest, status := f.cmd.parseUntil(args, 1)
	if status >= 0 {
		return status
	}
	if len(pos) == 0 {
		return f.cmd.fail("missing ROOTFS")
	}
	cmdArgs := rest
	if len(rest) > 0 && rest[0] != "--" {
		// Flags may follow ROOTFS too; the first non-flag starts CMD.
		more, tail, status := f.cmd.parseUntil(rest, 1)
		if status >= 0 {
			return status
		}
		cmdArgs = append(more, tail...)
	} else if len(rest) > 0 {
		cmdArgs = rest[1:]
	}
	if len(cmdArgs) == 0 && !isImage(pos[0]) {
		return f.cmd.fail("missing CMD")
	}
	spec, err := f.spec(cmdArgs)
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(c.stderr, "berth run: %s\n", line)
		}
		return exitUsage
	}
	progress := c.progress(false) // an image's unpack
	dir, ic, cleanup, err := rootfsDir(pos[0], spec.UserNS, progress)
	if err != nil {
		c.errorf("%v", err)
		return exitRunError
	}
	defer cleanup()
	spec.Rootfs = dir
	if err := boot.ApplyImage(&spec, ic, f.overrides()); err != nil {
		c.errorf("%s: %v", pos[0], err)
		return exitRunError
	}
	return c.runContainer(spec)
}

// overrides are the flags that take the place of the image's config.
func (f *runFlags) overrides() boot.ImageOverrides {
	o := boot.ImageOverrides{User: *f.user != ""}
	f.cmd.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "entrypoint" {
			o.Entrypoint = []string{}
			if *f.entrypt != "" {
				o.Entrypoint = []string{*f.entrypt}
			}
		}
	})
	return o
}

// runContainer starts spec with berth's own stdio (or a terminal with -t),
// forwards signals to the container's first process and returns the exit
// status to report.
func (c *ctx) runContainer(spec container.Spec) int {
	layout, err := container.DetectCgroups()
	if err != nil {
		c.errorf("%v", err)
		return exitRunError
	}
	// Signals for the container are caught while it starts, so none is
	// lost between the start and the forwarding loop (see forwardSignals).
	sigs := catchSignals()
	defer sigs.stop()

	stdout, doneOut := fileFor(c.stdout)
	stderr, doneErr := fileFor(c.stderr)
	defer doneErr()
	defer doneOut()
	opts := container.Options{Stdin: c.stdin, Stdout: stdout, Stderr: stderr, DieWithParent: true}
	if spec.TTY {
		spec.Env = withTerm(spec.Env)
		// Of berth's terminal's size from the start: attachTerminal's
		// resize comes once the workload runs.
		opts.Rows, opts.Cols = termSize(c.stdin)
	}
	if spec.Net == "bridge" {
		nw, att, err := attachBridge(spec)
		if err != nil {
			c.errorf("container %s: %v", spec.Name, err)
			return exitRunError
		}
		container.Trace("bridge-attach")
		defer func() {
			if err := nw.Close(); err != nil {
				c.errorf("bridge network: %v", err)
			}
			container.Trace("bridge-detach")
		}()
		opts.Network = att
	}
	ct, err := container.Start(layout, spec, opts)
	if err != nil {
		c.errorf("container %s: %v", spec.Name, err)
		var se *container.StartError
		if errors.As(err, &se) {
			return se.Code
		}
		return exitRunError
	}
	for _, w := range ct.Warnings {
		c.errorf("container %s: warning: %s", spec.Name, w)
	}
	// Cgroups of berth runs that were killed, cleaned while the workload
	// runs: nothing here depends on it, and the start needs both CPUs.
	go layout.CleanStale(false)
	var term *terminal
	if ct.PTY != nil {
		term = attachTerminal(ct.PTY, c.stdin, stdout)
		defer term.restore()
	}
	sigs.forward(ct, term)
	exit, err := ct.Wait()
	if err != nil {
		c.errorf("%v", err)
	}
	if exit.OOM() || exit.Signal != 0 {
		c.errorf("%s", exit)
	}
	return exit.Status()
}

// attachBridge attaches a net = "bridge" container to the host's bridge,
// creating it (and the nftables table) if no other berth has; the
// caller's Close at exit gives it back, and removes them if it was the
// last. Leftovers of berth processes killed before they could are
// cleaned up on the way.
func attachBridge(spec container.Spec) (*board.Network, *container.Network, error) {
	nw, err := board.NewNetwork(netip.Prefix{})
	if err != nil {
		return nil, nil, err
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname = spec.Name
	}
	e := board.Endpoint{Name: spec.Name, Hostname: hostname}
	for _, p := range spec.PublishedPorts() {
		e.Ports = append(e.Ports, board.Port{Host: p.Host, Container: p.Container, Proto: p.Proto})
	}
	a, err := nw.Attach(e)
	if err != nil {
		nw.Close()
		return nil, nil, fmt.Errorf("bridge: %w", err)
	}
	return nw, &container.Network{Bridge: a.Bridge, Link: a.Link, Address: a.Address, Gateway: a.Gateway,
		Hosts: a.Hosts, ResolvConf: a.ResolvConf}, nil
}

// withTerm gives a terminal session a TERM, as docker -t does: the
// caller's own, or xterm.
func withTerm(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "TERM=") {
			return env
		}
	}
	term := os.Getenv("TERM")
	if term == "" {
		term = "xterm"
	}
	return append(env[:len(env):len(env)], "TERM="+term)
}
