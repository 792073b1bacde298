package container

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

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
//     through tasks files the parent opened) and a new cgroup
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
// hierarchies' tasks files or the v2 cgroup directory.
type directFds struct {
	sock, childSock *os.File
	errR, errW      *os.File
	null            *os.File
	cgroupTasks     []*os.File
	cgroupDir       *os.File
	// landlock is an exec's copy of the ruleset the container was
	// started with (exec.go).
	landlock *os.File
}

func (d *directFds) close() {
	for _, f := range append([]*os.File{d.sock, d.childSock, d.errR, d.errW, d.null, d.cgroupDir, d.landlock}, d.cgroupTasks...) {
		if f != nil {
			f.Close()
		}
	}
}

// closeChildsOwn closes, in berth, the fds only the child uses.
func (d *directFds) closeChildsOwn() {
	for _, f := range append([]*os.File{d.childSock, d.errW, d.null, d.cgroupDir, d.landlock}, d.cgroupTasks...) {
		if f != nil {
			f.Close()
		}
	}
	d.childSock, d.errW, d.null, d.cgroupDir, d.landlock, d.cgroupTasks = nil, nil, nil, nil, nil, nil
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
	flags := uint64(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if spec.Net != "host" {
		flags |= unix.CLONE_NEWNET
	}
	// The child shares berth's memory, unless its oom_score_adj is to be
	// set: the kernel writes a value given to one process sharing a
	// memory to all of them, berth too.
	pid, pidfd, err := cloneChild(k, d, flags, spec.OOMScoreAdj == nil)
	if err != nil {
		return setupError(err)
	}
	// The pidfd stays with the container: an exec joins its namespaces
	// through it (exec.go).
	keepPidfd := false
	defer func() {
		if !keepPidfd {
			pidfd.Close()
		}
	}()
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
		c.PTY, c.landlock = res.pty, res.landlock
	}
	if failed {
		err = describeChildError(k, rec, spec)
	}
	if err == nil {
		c.Pid, c.pidfd, keepPidfd = pid, pidfd, true
		return nil
	}
	killStarted(pid, opts)
	if c.PTY != nil {
		c.PTY.Close()
		c.PTY = nil
	}
	if c.landlock != nil {
		c.landlock.Close()
		c.landlock = nil
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

// cloneChild clones the child of plan k with the clone flags ns (new
// namespaces) and, on v2, into its cgroup, and closes, in berth, the fds
// only the child uses. With share the child runs in berth's memory
// (CLONE_VM); without, in a copy of it (a fork): what a process sharing
// berth's memory is given or suffers in a cgroup, berth gets too — the
// kernel's OOM killer kills every process of the memory it chose, and
// an oom_score_adj written for one is written for all.
func cloneChild(k *childPlan, d *directFds, ns uint64, share bool) (int, *os.File, error) {
	// The child's stack starts 16 bytes below the top of its buffer, the
	// argument of childMain 8 bytes below: where a call on arm64 and
	// riscv64 finds it, and clone_amd64.s and clone_arm.s move it from.
	// k is on the heap and lives on in berth, so the child may use it.
	k.stack = make([]byte, childStack)
	*(*uintptr)(unsafe.Pointer(&k.stack[childStack-8])) = uintptr(unsafe.Pointer(k))
	k.args = cloneArgs{exitSignal: uint64(syscall.SIGCHLD), stack: uint64(uintptr(unsafe.Pointer(&k.stack[0]))), stackSize: childStack - 16}
	k.args.flags = unix.CLONE_PIDFD | ns
	if share {
		k.args.flags |= unix.CLONE_VM
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
	if d.null, err = openCtlFile(os.DevNull, unix.O_RDONLY); err != nil {
		return err
	}
	if layout.Version == 2 {
		if d.cgroupDir, err = os.Open(c.cgroup.dirs[0]); err != nil {
			return fmt.Errorf("open cgroup %s: %w", c.cgroup.dirs[0], err)
		}
	} else {
		// The child joins each v1 cgroup by writing "0", itself, to its
		// tasks file, not its cgroup.procs: for a process of one thread
		// (a raw clone) the two are the same move, but a thread that moves
		// itself does not take the kernel's global lock against every
		// fork on the machine, whose write side waits for an RCU grace
		// period: 2 to 15 ms on a busy 2-core host, more than the rest of
		// the start. (Linux commit 9a3284fad42f, "cgroup: Optimize single
		// thread migration", which this host's 6.18 has; a kernel without
		// it takes the lock for both, as before.)
		for _, dir := range c.cgroup.dirs {
			f, err := openCtlFile(filepath.Join(dir, "tasks"), unix.O_WRONLY)
			if err != nil {
				return fmt.Errorf("open cgroup %s: %w", dir, err)
			}
			d.cgroupTasks = append(d.cgroupTasks, f)
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
	data, _ := io.ReadAll(io.LimitReader(r, 64))
	return parseChildError(data)
}

// parseChildError reads the error record in what came on the pipe.
func parseChildError(data []byte) ([3]uint32, bool) {
	var rec [3]uint32
	if len(data) < int(unsafe.Sizeof(rec)) {
		return rec, false
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&rec[0])), unsafe.Sizeof(rec)), data)
	return rec, true
}

// dupAbove2 returns a close-on-exec copy of f above the child's stdio.
func dupAbove2(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
