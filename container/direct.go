package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"
)

// A direct start runs no second berth: a container without a user
// namespace starts as a process that makes only raw system calls
// (child.go), while a thread of berth's own builds its filesystem tree.
//
//  1. The parent prepares the child's whole plan — stdio, rlimits,
//     capabilities, ids, seccomp filter, argv, environment, the paths a
//     PATH search tries — and clones it with clone3 into new mount, PID,
//     UTS, IPC and network namespaces (on v2 straight into its cgroup),
//     in berth's memory, on a stack of its own.
//  2. The child closes every fd it does not need, joins its cgroup (v1:
//     through cgroup.procs files the parent opened) and a new cgroup
//     namespace rooted there, opens the contexts of a proc filesystem of
//     its PID namespace and of the cgroup filesystems of its cgroup
//     namespace, hands them to berth over a socket and waits.
//  3. Meanwhile a goroutine locked to a fresh thread (started with the
//     start) unshares its filesystem context and joins the child's
//     mount, UTS, IPC and network namespaces (setns through the pidfd),
//     names the host, brings up lo (and eth0), builds the tree exactly as
//     the init of a user-namespaced container does (rootfs.go, with the
//     child's proc and cgroup contexts), pivot_roots, opens the terminal,
//     and sends the go-ahead. The thread never returns to the Go
//     scheduler: it ends with its goroutine.
//  4. The child chroots into the root mount it holds (whatever became of
//     its root, it is now the container's), takes its stdio, sets the
//     rlimits, cuts the bounding set, sets groups, gid, uid and exactly
//     its capabilities, enters the working directory as the workload's
//     user and checks it is inside the root, marks every fd close-on-exec,
//     sets no_new_privs and the seccomp filter and execs the workload. A
//     failure goes back on the error pipe as a step and an errno.

// directFds are the fds of a direct start, berth's and (at the clone)
// the child's: the socket to the thread, the error pipe, the v1
// cgroup.procs files or the v2 cgroup directory.
type directFds struct {
	sock, childSock *os.File
	errR, errW      *os.File
	null            *os.File
	cgroupProcs     []*os.File
	cgroupDir       *os.File
}

func (d *directFds) close() {
	for _, f := range append([]*os.File{d.sock, d.childSock, d.errR, d.errW, d.null, d.cgroupDir}, d.cgroupProcs...) {
		if f != nil {
			f.Close()
		}
	}
}

// closeChildsOwn closes, in berth, the fds only the child uses.
func (d *directFds) closeChildsOwn() {
	for _, f := range append([]*os.File{d.childSock, d.errW, d.null, d.cgroupDir}, d.cgroupProcs...) {
		if f != nil {
			f.Close()
		}
	}
	d.childSock, d.errW, d.null, d.cgroupDir, d.cgroupProcs = nil, nil, nil, nil, nil
}

// spawnDirect starts the container of cfg as a direct start (see above),
// its tree built by b.
func (c *Container) spawnDirect(layout *Layout, cfg initConfig, opts Options, b *builder) error {
	spec := cfg.Spec
	d := &directFds{}
	defer d.close()
	if err := d.open(c, layout); err != nil {
		return setupError(err)
	}
	hm, err := prepareHostMounts(spec, cfg.Devices)
	if err != nil {
		return setupError(err)
	}
	defer hm.close()
	k, err := newChildPlan(cfg, d, hm, opts)
	if err != nil {
		return setupError(err)
	}
	// The parent death signal belongs to the thread that clones: it stays
	// locked until the workload runs.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, pidfd, err := cloneChild(k, d, spec)
	if err != nil {
		return setupError(err)
	}
	defer pidfd.Close()
	trace("clone")
	if err = c.prepareChild(spec, opts, pid); err == nil {
		b.start(job{cfg: cfg, hm: hm, sock: d.sock, pidfd: int(pidfd.Fd()), pid: pid})
	} else {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// The error pipe is close-on-exec: its end without a record means
	// the workload was exec'd, or the child was killed (by the builder,
	// which failed, or above). A record says what failed, and says more
	// than the builder when the child failed first. Either way the child
	// no longer uses its plan and stack, in berth's memory.
	rec, failed := readChildError(d.errR)
	runtime.KeepAlive(k)
	if err == nil {
		res := b.wait()
		if res.err != nil {
			err = setupError(res.err)
		}
		c.PTY = res.pty
	}
	if failed {
		err = describeChildError(k, rec, spec)
	}
	if err == nil {
		c.Pid = pid
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if c.PTY != nil {
		c.PTY.Close()
		c.PTY = nil
	}
	if !opts.ExternalReaper {
		var ws syscall.WaitStatus
		for {
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
				break
			}
		}
	}
	return err
}

// prepareChild does the parent's part before the tree: the child's
// oom_score_adj, and its veth on a bridge.
func (c *Container) prepareChild(spec Spec, opts Options, pid int) error {
	if spec.OOMScoreAdj != nil {
		if err := writeFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", strconv.Itoa(*spec.OOMScoreAdj)); err != nil {
			return setupError(fmt.Errorf("set oom_score_adj %d: %w", *spec.OOMScoreAdj, err))
		}
	}
	if spec.Net == "bridge" {
		if err := opts.Network.attach(pid); err != nil {
			return setupError(err)
		}
		trace("veth")
	}
	return nil
}

// childStack is the size of the child's stack: its calls go a few frames
// deep, each small.
const childStack = 16 << 10

// cloneChild clones the child of plan k into its namespaces (and, on v2,
// its cgroup) and closes, in berth, the fds only the child uses.
func cloneChild(k *childPlan, d *directFds, spec Spec) (int, *os.File, error) {
	// The child's stack starts 16 bytes below the top of its buffer, the
	// argument of childMain 8 bytes below: where a call on arm64 and
	// riscv64 finds it, and clone_amd64.s and clone_arm.s move it from.
	// k is on the heap and lives on in berth, so the child may use it.
	k.stack = make([]byte, childStack)
	*(*uintptr)(unsafe.Pointer(&k.stack[childStack-8])) = uintptr(unsafe.Pointer(k))
	k.args = cloneArgs{exitSignal: uint64(syscall.SIGCHLD), stack: uint64(uintptr(unsafe.Pointer(&k.stack[0]))), stackSize: childStack - 16}
	k.args.flags = unix.CLONE_VM | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_PIDFD
	if spec.Net != "host" {
		k.args.flags |= unix.CLONE_NEWNET
	}
	// The kernel writes the pidfd there: k is on the heap, which does
	// not move.
	k.pidfd = -1
	k.args.pidfd = uint64(uintptr(unsafe.Pointer(&k.pidfd)))
	if d.cgroupDir != nil {
		k.args.flags |= unix.CLONE_INTO_CGROUP
		k.args.cgroup = uint64(d.cgroupDir.Fd())
	}
	// The child unblocks what this thread has unblocked, once it has
	// reset the signals' handlers.
	k.sigIgnore[0] = 1 // SIG_IGN
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, nil, &k.sigmask); err != nil {
		return 0, nil, fmt.Errorf("start container: signal mask: %w", err)
	}
	pid, errno := k.clone(&k.args)
	d.closeChildsOwn()
	if errno != 0 {
		return 0, nil, fmt.Errorf("start container: clone: %w", errno)
	}
	return int(pid), os.NewFile(uintptr(k.pidfd), "pidfd"), nil
}

// open opens the fds of a direct start; the child's are kept above 2,
// where its stdio goes.
func (d *directFds) open(c *Container, layout *Layout) error {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("start socket: %w", err)
	}
	d.sock, d.childSock = os.NewFile(uintptr(pair[0]), "start socket"), os.NewFile(uintptr(pair[1]), "start socket")
	if d.errR, d.errW, err = os.Pipe(); err != nil {
		return fmt.Errorf("error pipe: %w", err)
	}
	if d.null, err = os.Open(os.DevNull); err != nil {
		return err
	}
	if layout.Version == 2 {
		if d.cgroupDir, err = os.Open(c.cgroup.dirs[0]); err != nil {
			return fmt.Errorf("open cgroup %s: %w", c.cgroup.dirs[0], err)
		}
	} else {
		for _, dir := range c.cgroup.dirs {
			f, err := os.OpenFile(filepath.Join(dir, "cgroup.procs"), os.O_WRONLY, 0)
			if err != nil {
				return fmt.Errorf("open cgroup %s: %w", dir, err)
			}
			d.cgroupProcs = append(d.cgroupProcs, f)
		}
	}
	for _, f := range []**os.File{&d.childSock, &d.errW} {
		if (*f).Fd() <= 2 {
			fd, err := unix.FcntlInt((*f).Fd(), unix.F_DUPFD_CLOEXEC, 3)
			if err != nil {
				return fmt.Errorf("start: %w", err)
			}
			(*f).Close()
			*f = os.NewFile(uintptr(fd), (*f).Name())
		}
	}
	return nil
}

// readChildError reads the child's error pipe to its end, which comes
// when the child has exec'd or ended: only then has it stopped using
// berth's memory (its plan, its stack), which it shares until then. A
// record on it says what failed.
func readChildError(r *os.File) ([3]uint32, bool) {
	var rec [3]uint32
	data, _ := io.ReadAll(io.LimitReader(r, 64))
	if len(data) < int(unsafe.Sizeof(rec)) {
		return rec, false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&rec[0])), unsafe.Sizeof(rec)), data)
	return rec, true
}

// treeResult is what the builder reports: the terminal's master when
// the workload has one, or what failed.
type treeResult struct {
	pty *os.File
	err error
}

// job is a builder's work: the tree of the child pid (pidfd), whose end
// of the socket is sock's peer.
type job struct {
	cfg   initConfig
	hm    *hostMounts
	sock  *os.File
	pidfd int
	pid   int
}

// builder is a goroutine locked to a fresh thread, started before the
// parent clones the child so that the thread exists by then. Given a
// job (start) it joins the child's namespaces and builds the tree; the
// thread, with its own root, working directory, umask and namespaces,
// then ends with the goroutine, which never unlocks it. Released without
// a job (release), it leaves its thread as it found it.
type builder struct {
	jobs chan job
	done chan treeResult
	sent bool
}

func newBuilder() *builder {
	b := &builder{jobs: make(chan job, 1), done: make(chan treeResult, 1)}
	go b.run()
	return b
}

// run locks the goroutine to its thread. Never the main thread, which
// cannot end and whose view /proc/self shows: there it holds the thread
// until another goroutine has locked one of its own to serve.
func (b *builder) run() {
	runtime.LockOSThread()
	if unix.Gettid() != unix.Getpid() {
		b.serve()
		return
	}
	locked := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		close(locked)
		b.serve()
	}()
	<-locked
	runtime.UnlockOSThread()
}

func (b *builder) serve() {
	j, ok := <-b.jobs
	if !ok {
		runtime.UnlockOSThread()
		return
	}
	pty, err := buildTree(j)
	if err != nil {
		// The parent waits for the child's execve: the child must end.
		_ = syscall.Kill(j.pid, syscall.SIGKILL)
	}
	b.done <- treeResult{pty, err}
}

// start hands the builder its job.
func (b *builder) start(j job) {
	b.sent = true
	b.jobs <- j
}

// wait returns what the builder of a started job reports.
func (b *builder) wait() treeResult { return <-b.done }

// release lets a builder that got no job go.
func (b *builder) release() {
	if !b.sent {
		close(b.jobs)
	}
}

// buildTree joins the child's namespaces from the builder's thread,
// builds the container's tree and gives the child the go-ahead.
func buildTree(j job) (*os.File, error) {
	cfg, spec := j.cfg, j.cfg.Spec
	// 1. The child's namespaces: setns(CLONE_NEWNS) refuses a thread that
	// shares its filesystem context.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return nil, fmt.Errorf("unshare filesystem context: %w", err)
	}
	ns := unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC
	if spec.Net != "host" {
		ns |= unix.CLONE_NEWNET
	}
	if err := joinNamespaces(j.pidfd, j.pid, ns); err != nil {
		return nil, err
	}
	trace("setns")

	// 2. Name the host; bring up lo and, on a bridge, eth0.
	if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
		return nil, fmt.Errorf("set hostname %q: %w", spec.Hostname, err)
	}
	if spec.Net != "host" {
		if err := netUp(cfg.Net); err != nil {
			return nil, err
		}
		trace("net-up")
	}

	// 3. The tree, with the child's proc and cgroup contexts, received
	// when the tree first needs one.
	ctxs := &contexts{sock: j.sock, n: 1 + cgroupMounts(cfg)}
	defer ctxs.close()
	root, err := setupRootfs(cfg, j.hm, ctxs.open)
	if err != nil {
		return nil, err
	}
	defer root.close()
	trace("rootfs")

	// 4. pivot_root, then what needs the new root.
	if err := root.pivotRoot(); err != nil {
		return nil, err
	}
	if spec.ReadonlyRoot {
		if err := setReadonly(root.root, false); err != nil {
			return nil, fmt.Errorf("root: %w", err)
		}
	}
	if err := root.mountCgroups(cfg); err != nil {
		return nil, err
	}
	trace("pivot")
	return goAhead(j.sock, spec)
}

// joinNamespaces enters the namespaces ns of the process pidfd (pid): in
// one setns through the pidfd, or one by one through /proc before Linux
// 5.8.
func joinNamespaces(pidfd, pid, ns int) error {
	err := unix.Setns(pidfd, ns)
	if err != unix.EINVAL {
		if err != nil {
			return fmt.Errorf("join the container's namespaces: %w", err)
		}
		return nil
	}
	for _, n := range []struct {
		flag int
		name string
	}{{unix.CLONE_NEWNS, "mnt"}, {unix.CLONE_NEWUTS, "uts"}, {unix.CLONE_NEWIPC, "ipc"}, {unix.CLONE_NEWNET, "net"}} {
		if ns&n.flag == 0 {
			continue
		}
		p := "/proc/" + strconv.Itoa(pid) + "/ns/" + n.name
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, n.flag)
			unix.Close(fd)
		}
		if err != nil {
			return fmt.Errorf("join the container's namespace %s: %w", p, err)
		}
	}
	return nil
}

// cgroupMounts is how many cgroup filesystems the container mounts.
func cgroupMounts(cfg initConfig) int {
	if cfg.CgroupVersion == 2 {
		return 1
	}
	return len(cfg.CgroupV1)
}

// contexts are the filesystem contexts the child opened: proc, then its
// cgroup filesystems, n in all, received from sock when first needed.
// open hands them out by type, in that order, and opens any other type
// itself.
type contexts struct {
	sock     *os.File
	n        int
	received bool
	fds      []int
}

func (c *contexts) receive() error {
	c.received = true
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4*c.n))
	m, oobn, _, _, err := unix.Recvmsg(int(c.sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return fmt.Errorf("receive the container's filesystems: %w", err)
	}
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
		c.fds, _ = unix.ParseUnixRights(&msgs[0])
	}
	if m != 1 || len(c.fds) != c.n {
		return errors.New("the container's first process ended before it handed over its filesystems")
	}
	trace("contexts")
	return nil
}

func (c *contexts) open(fstype string) (int, error) {
	if fstype != "proc" && fstype != "cgroup" && fstype != "cgroup2" {
		return fsopen(fstype)
	}
	if !c.received {
		if err := c.receive(); err != nil {
			return -1, err
		}
	}
	if len(c.fds) == 0 {
		return -1, fmt.Errorf("no %s context from the container's first process", fstype)
	}
	fd := c.fds[0]
	c.fds = c.fds[1:]
	return fd, nil
}

func (c *contexts) close() {
	for _, fd := range c.fds {
		unix.Close(fd)
	}
	c.fds = nil
}

// goAhead makes the working directory, opens the terminal when asked for
// and sends the child the go-ahead, with the terminal's slave; it returns
// the master. It runs after pivot_root: the paths are the container's.
func goAhead(sock *os.File, spec Spec) (*os.File, error) {
	if cwd := spec.Cwd; cwd != "" {
		if err := os.MkdirAll(cwd, 0o755); err != nil {
			return nil, fmt.Errorf("create working directory %s: %w", cwd, err)
		}
	}
	var master, slave *os.File
	var rights []byte
	if spec.TTY {
		var err error
		if master, slave, err = openPTY(spec.User.UID, spec.User.GID); err != nil {
			return nil, err
		}
		defer slave.Close()
		rights = unix.UnixRights(int(slave.Fd()))
	}
	if err := unix.Sendmsg(int(sock.Fd()), []byte{'g'}, rights, nil, 0); err != nil {
		if master != nil {
			master.Close()
		}
		return nil, fmt.Errorf("start the container's first process: %w", err)
	}
	trace("go")
	return master, nil
}

// newChildPlan prepares everything the child does (child.go).
func newChildPlan(cfg initConfig, d *directFds, hm *hostMounts, opts Options) (*childPlan, error) {
	spec := cfg.Spec
	k := &childPlan{sock: int32(d.childSock.Fd()), errPipe: int32(d.errW.Fd()), rootfd: int32(hm.rootfs.Fd()), zero: [1]byte{'0'}}
	for i, f := range []*os.File{opts.Stdin, opts.Stdout, opts.Stderr} {
		if f == nil {
			f = d.null
		}
		k.stdio[i] = int32(f.Fd())
	}
	keep := []int32{k.sock, k.errPipe, k.rootfd, k.stdio[0], k.stdio[1], k.stdio[2]}
	for _, f := range d.cgroupProcs {
		k.cgroupProcs = append(k.cgroupProcs, int32(f.Fd()))
	}
	keep = append(keep, k.cgroupProcs...)
	slices.Sort(keep)
	k.keep = slices.Compact(keep)
	if opts.DieWithParent {
		k.pdeathsig = uintptr(syscall.SIGKILL)
	}
	if err := planHandOver(k, cfg); err != nil {
		return nil, err
	}
	if err := planCredentials(k, spec, cfg); err != nil {
		return nil, err
	}
	if err := planExec(k, spec); err != nil {
		return nil, err
	}
	return k, nil
}

// planHandOver prepares the filesystems the child opens and the messages
// it sends and receives.
func planHandOver(k *childPlan, cfg initConfig) error {
	types := []string{"proc"}
	for range cgroupMounts(cfg) {
		types = append(types, map[int]string{1: "cgroup", 2: "cgroup2"}[cfg.CgroupVersion])
	}
	for _, t := range types {
		p, err := syscall.BytePtrFromString(t)
		if err != nil {
			return err
		}
		k.fsTypes = append(k.fsTypes, p)
	}
	k.fdsAt = unix.CmsgLen(0)
	k.sendOOB = unix.UnixRights(make([]int, len(types))...)
	k.sendIOV = unix.Iovec{Base: &k.zero[0]}
	k.sendIOV.SetLen(1)
	k.send = unix.Msghdr{Iov: &k.sendIOV, Control: &k.sendOOB[0]}
	k.send.SetIovlen(1)
	k.send.SetControllen(len(k.sendOOB))
	k.recvOOB = make([]byte, unix.CmsgSpace(4))
	k.recvIOV = unix.Iovec{Base: &k.recvBuf[0]}
	k.recvIOV.SetLen(1)
	k.recv = unix.Msghdr{Iov: &k.recvIOV, Control: &k.recvOOB[0]}
	k.recv.SetIovlen(1)
	k.recv.SetControllen(len(k.recvOOB))
	return nil
}

// planCredentials prepares the rlimits, the seccomp filter, the bounding
// set, the ids and the capabilities.
func planCredentials(k *childPlan, spec Spec, cfg initConfig) error {
	for _, r := range spec.Rlimits {
		res, ok := rlimitByName[r.Name]
		if !ok {
			return fmt.Errorf("unknown rlimit %q", r.Name)
		}
		k.rlimits = append(k.rlimits, childRlimit{uintptr(res), unix.Rlimit{Cur: r.Soft, Max: r.Hard}})
	}
	if len(cfg.Seccomp) > 0 {
		k.seccomp = &unix.SockFprog{Len: uint16(len(cfg.Seccomp)), Filter: &cfg.Seccomp[0]}
		k.seccompEarly = spec.AllowNewPrivileges
	}
	k.noNewPrivs = !spec.AllowNewPrivileges
	caps, err := capList(cfg.Caps)
	if err != nil {
		return err
	}
	var mask uint64
	for _, c := range caps {
		mask |= 1 << uint(c)
	}
	last, err := capability.LastCap()
	if err != nil {
		return fmt.Errorf("capabilities: %w", err)
	}
	for c := capability.Cap(0); c <= last; c++ {
		if mask&(1<<uint(c)) == 0 {
			k.capDrop = append(k.capDrop, uintptr(c))
		}
	}
	k.capHdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	k.capData[0] = unix.CapUserData{Effective: uint32(mask), Permitted: uint32(mask)}
	k.capData[1] = unix.CapUserData{Effective: uint32(mask >> 32), Permitted: uint32(mask >> 32)}
	k.groups = append([]uint32{}, spec.User.Groups...)
	k.uid, k.gid = uintptr(spec.User.UID), uintptr(spec.User.GID)
	return nil
}

// planExec prepares the working directory, argv, the environment and the
// paths to try, as lookPath would find them.
func planExec(k *childPlan, spec Spec) error {
	cwd := spec.Cwd
	if cwd == "" {
		cwd = "/"
	}
	env, path := workloadEnv(spec.Env)
	var err error
	if k.cwd, err = syscall.BytePtrFromString(cwd); err != nil {
		return err
	}
	if k.argv, err = syscall.SlicePtrFromStrings(spec.Args); err != nil {
		return err
	}
	if k.envv, err = syscall.SlicePtrFromStrings(env); err != nil {
		return err
	}
	for _, p := range execCandidates(spec.Args[0], path) {
		b, err := syscall.BytePtrFromString(p)
		if err != nil {
			return err
		}
		k.paths = append(k.paths, b)
	}
	if tracing {
		const prefix = "berth-trace exec "
		k.trace = make([]byte, len(prefix)+20)
		k.traceLen = copy(k.trace, prefix)
	}
	return nil
}

// execCandidates are the paths a shell tries for name: itself when it
// has a slash, else name in each directory of path ("" is ".").
func execCandidates(name, path string) []string {
	if strings.Contains(name, "/") {
		return []string{name}
	}
	var out []string
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		out = append(out, filepath.Join(dir, name))
	}
	return out
}

// childSteps say what each step of the child does, for its errors.
var childSteps = map[uint32]string{
	stepPdeathsig: "set the parent death signal", stepCloseFds: "close inherited fds",
	stepJoinCgroup: "join the container's cgroup", stepCgroupNS: "unshare cgroup namespace",
	stepHandOver: "hand over filesystems", stepAwait: "wait for berth", stepRoot: "enter the container's root",
	stepTTY: "set controlling terminal", stepStdio: "set up stdio", stepSeccomp: "install seccomp filter",
	stepKeepCaps: "keep capabilities", stepCaps: "apply capabilities", stepAmbient: "clear ambient capabilities",
	stepCloexec: "mark fds close-on-exec", stepNoNewPrivs: "set no_new_privs",
}

// describeChildError turns the child's error record into the error of the start.
func describeChildError(k *childPlan, rec [3]uint32, spec Spec) error {
	step, errno, i := rec[0], syscall.Errno(rec[1]), int(rec[2])
	switch step {
	case stepExec:
		name := spec.Args[0]
		switch {
		case errno != unix.ENOENT && errno != unix.ENOTDIR:
			return &StartError{126, fmt.Errorf("exec %s: %w", name, errno)}
		case strings.Contains(name, "/"):
			return &StartError{127, fmt.Errorf("exec %s: no such file", name)}
		}
		_, path := workloadEnv(spec.Env)
		return &StartError{127, fmt.Errorf("exec %s: not found in PATH %s", name, path)}
	case stepFsopen:
		return setupError(fmt.Errorf("open a %s filesystem: %w", bytePtrString(k.fsTypes, i), errno))
	case stepRlimit:
		return setupError(fmt.Errorf("set rlimits %v: %w", spec.Rlimits, errno))
	case stepBounding:
		return setupError(fmt.Errorf("drop bounding capabilities to %v: %w", spec.Caps, errno))
	case stepGroups:
		return setupError(fmt.Errorf("set groups %v: %w", spec.User.Groups, errno))
	case stepGID:
		return setupError(fmt.Errorf("set gid %d: %w", spec.User.GID, errno))
	case stepUID:
		return setupError(fmt.Errorf("set uid %d: %w", spec.User.UID, errno))
	case stepChdir:
		return setupError(fmt.Errorf("chdir to working directory %s: %w", spec.Cwd, errno))
	case stepCwdOutside:
		return setupError(fmt.Errorf("working directory %s is outside the container's root", spec.Cwd))
	}
	if what, ok := childSteps[step]; ok {
		return setupError(fmt.Errorf("%s: %w", what, errno))
	}
	return setupError(fmt.Errorf("container start failed at step %d: %w", step, errno))
}

func bytePtrString(ps []*byte, i int) string {
	if i < 0 || i >= len(ps) {
		return "?"
	}
	return unix.BytePtrToString(ps[i])
}
