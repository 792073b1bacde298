package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/safe"
)

// An exec runs a command in a running container with exactly the
// confinement of the container's first process, through the child of a
// direct start (child.go, child_exec.go) on a plan made from the same
// resolved spec:
//
//  1. The parent takes the pidfd of the container's first process, kept
//     since its clone (no recycled pid can stand in for it), and opens
//     that process's root (/proc/PID/root), checked against the pidfd.
//  2. A goroutine locked to its thread joins the container's PID
//     namespace for its children (setns CLONE_NEWPID) and clones the
//     child there, on v2 straight into the container's cgroup; the
//     thread then returns to berth's own (or, if it cannot, ends).
//  3. The child, its own thread group with its own filesystem context,
//     closes every fd but the plan's, sets the container's
//     oom_score_adj, joins its v1 cgroups, joins through the pidfd all
//     of its namespaces at once (user, mount, UTS, IPC, network, cgroup)
//     and chroots into the root the parent opened.
//  4. It sets the rlimits, cuts the bounding set, switches to the user
//     and capabilities (credentials), opens a terminal of the
//     container's devpts as that user when asked for, sending berth its
//     master, takes its stdio, enters the working directory, checks it
//     is inside the root, sets no_new_privs and the seccomp filters, and
//     execs (seal, exec). The filters are the profile's and, stacked
//     before it even when the container is unconfined, the clone guard
//     (seccomp.CloneGuard): the process is berth's child, and a child it
//     made with CLONE_PARENT would be berth's to reap.
//
// The exec'd process is a child of berth in the container's PID
// namespace and cgroup: it counts against pids.max, and the container's
// end (its first process, PID 1 of that namespace, exiting) kills it.

// ErrNotRunning is the error of an exec into a container whose first
// process has ended.
var ErrNotRunning = errors.New("the container is not running")

// ExecOptions describe a command to run in a running container.
type ExecOptions struct {
	// Args is the command and its arguments, looked up in the PATH of
	// the environment when Args[0] has no slash.
	Args []string
	// Env overrides the container's environment: K=V replaces K.
	Env []string
	// User, when set, replaces the container's user (uid, gid and
	// supplementary groups); Cwd, when set, its working directory.
	User *User
	Cwd  string
	// TTY gives the command a new terminal of the container's devpts,
	// Rows by Cols; Exec returns its master as Process.PTY.
	TTY        bool
	Rows, Cols uint16
	// Stdin, Stdout and Stderr become the command's fds 0-2; nil means
	// /dev/null. Ignored with TTY.
	Stdin, Stdout, Stderr *os.File
	// ExternalReaper is set when a global reaper collects every exit
	// status: Exec then never waits for the child itself.
	ExternalReaper bool
	// StartTimeout, when shorter, replaces the 10 s that Exec waits for
	// the command to be exec'd before it kills it (a health check's own
	// timeout bounds its start too).
	StartTimeout time.Duration
	// Cloned, when set, is told the child's pid as soon as it exists,
	// before Exec waits for its execve: a global reaper owns it from then.
	Cloned func(pid int)
}

// Process is a command Exec started. The caller reaps Pid and closes
// Pidfd and PTY. Pidfd names the command for good: a signal sent
// through it (unix.PidfdSendSignal) never reaches another process,
// even once Pid has been reaped and reused.
type Process struct {
	Pid   int
	Pidfd *os.File
	PTY   *os.File
}

// Exec runs opts.Args in the running container c (see above) and returns
// once the command has been exec'd. A failure is a *StartError (126: not
// executable, 127: not found, 125: anything else) or, when the container
// has ended, wraps ErrNotRunning.
func (c *Container) Exec(opts ExecOptions) (*Process, error) {
	if c.cfg.Spec.TracesExecs(c.cfg.Caps) {
		return nil, setupError(fmt.Errorf("exec into container %s is refused: %w", c.Spec.Name, ErrTracesExecs))
	}
	spec, err := c.execSpec(opts)
	if err != nil {
		return nil, setupError(err)
	}
	pidfd, root, ruleset, err := c.handles()
	if err != nil {
		return nil, err
	}
	defer pidfd.Close()
	defer root.Close()
	d := &directFds{landlock: ruleset}
	defer d.close()
	if err := d.open(c, c.cgroup.layout); err != nil {
		return nil, setupError(err)
	}
	k, err := newExecPlan(c.cfg, spec, d, pidfd, root, opts)
	if err != nil {
		return nil, setupError(err)
	}
	if err := holdUndumpable(); err != nil {
		return nil, setupError(fmt.Errorf("exec: %w", err))
	}
	defer releaseUndumpable()
	pid, childPidfd, err := cloneIntoPIDNS(k, d, pidfd)
	if err != nil {
		if !alive(pidfd) {
			return nil, fmt.Errorf("exec in container %s: %w", c.Spec.Name, ErrNotRunning)
		}
		return nil, setupError(err)
	}
	// From here on the child is berth's to end when the exec fails, a
	// panic (a bug) included: killed through its pidfd, which names no
	// other process once the reaper has taken its status.
	kill := func() { _ = unix.PidfdSendSignal(int(childPidfd.Fd()), unix.SIGKILL, nil, 0) }
	returned := false
	defer func() {
		if !returned {
			kill()
		}
	}()
	if opts.Cloned != nil {
		opts.Cloned(pid)
	}
	if execCloned != nil {
		execCloned(pid)
	}
	// The error pipe ends when the command has been exec'd, or the
	// child has failed: either way it no longer uses its plan. A process
	// of the container may stop the child (SIGSTOP, as its user): berth
	// then waits no longer than execStartTimeout and kills it.
	bound := opts.startTimeout()
	rec, failed := awaitExec(d.errR, kill, bound)
	runtime.KeepAlive(k)
	p := &Process{Pid: pid, Pidfd: childPidfd}
	if !failed && opts.TTY {
		if p.PTY, err = recvFd(d.sock); err != nil {
			kill()
			err = setupError(fmt.Errorf("receive the terminal: %w", err))
		}
	}
	if failed {
		err = describeChildError(k, rec, spec)
		if rec[0] == stepTimeout {
			err = setupError(fmt.Errorf("exec %s: killed: it had not reached its execve after %s (stopped by a process of the container?)", spec.Args[0], bound))
		}
		if rec[0] == stepJoinNS && !alive(pidfd) {
			err = fmt.Errorf("exec in container %s: %w", c.Spec.Name, ErrNotRunning)
		}
	}
	returned = true
	if err == nil {
		return p, nil
	}
	childPidfd.Close()
	if !opts.ExternalReaper {
		var ws syscall.WaitStatus
		for {
			if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
				break
			}
		}
	}
	return nil, err
}

// execSpec is the container's resolved spec with the command, the
// environment, the user and the working directory of opts.
func (c *Container) execSpec(opts ExecOptions) (Spec, error) {
	spec := c.cfg.Spec
	if len(opts.Args) == 0 || opts.Args[0] == "" {
		return spec, errors.New("exec: missing command")
	}
	for _, a := range opts.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return spec, fmt.Errorf("exec: argument %s holds a NUL byte", Quote(a))
		}
	}
	spec.Args = opts.Args
	spec.Env = append([]string(nil), spec.Env...)
	for _, kv := range opts.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.IndexByte(kv, 0) >= 0 {
			return spec, fmt.Errorf("exec: invalid environment entry %s: want K=V", Quote(kv))
		}
		spec.Env = setEnv(spec.Env, k, kv)
	}
	if cwd := opts.Cwd; cwd != "" {
		if err := CheckWorkdir(cwd); err != nil {
			return spec, fmt.Errorf("exec: working directory: %w", err)
		}
		spec.Cwd = cwd
	}
	if opts.User != nil {
		spec.User = *opts.User
	}
	if len(spec.User.Groups) > MaxGroups {
		return spec, fmt.Errorf("exec: %d groups: at most %d", len(spec.User.Groups), MaxGroups)
	}
	if ns := spec.UserNS; ns != nil {
		if !mapped(ns.UIDMap, spec.User.UID) || !mapped(ns.GIDMap, spec.User.GID) {
			return spec, fmt.Errorf("exec: user %d:%d is not mapped in the container's user namespace", spec.User.UID, spec.User.GID)
		}
	}
	spec.TTY = opts.TTY
	return spec, nil
}

// setEnv replaces every K= entry of env by kv, or appends it.
func setEnv(env []string, k, kv string) []string {
	out := env[:0]
	for _, e := range env {
		if !strings.HasPrefix(e, k+"=") {
			out = append(out, e)
		}
	}
	return append(out, kv)
}

// handles returns a pidfd of the container's first process, that
// process's root, opened while the pidfd shows the process has not been
// reaped (so the pid in /proc/PID/root was still its own), and a copy of
// the Landlock ruleset it was confined to (nil: none).
func (c *Container) handles() (pidfd, root, ruleset *os.File, err error) {
	c.mu.Lock()
	if c.pidfd == nil {
		c.mu.Unlock()
		return nil, nil, nil, fmt.Errorf("exec in container %s: %w", c.Spec.Name, ErrNotRunning)
	}
	pidfd, err = dupAbove2(c.pidfd)
	if err == nil && c.landlock != nil {
		if ruleset, err = dupAbove2(c.landlock); err != nil {
			pidfd.Close()
		}
	}
	c.mu.Unlock()
	if err != nil {
		return nil, nil, nil, setupError(fmt.Errorf("exec: %w", err))
	}
	defer func() {
		if err != nil {
			pidfd.Close()
			if ruleset != nil {
				ruleset.Close()
			}
		}
	}()
	p, rfd, err := openProcOf(c.Pid, pidfd, "root", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("exec in container %s: %w", c.Spec.Name, err)
	}
	if rfd <= 2 {
		// Keep the child's fds above its stdio (directFds.open).
		moved, err := unix.FcntlInt(uintptr(rfd), unix.F_DUPFD_CLOEXEC, 3)
		unix.Close(rfd)
		if err != nil {
			return nil, nil, nil, setupError(fmt.Errorf("exec: %s: %w", p, err))
		}
		rfd = moved
	}
	return pidfd, os.NewFile(uintptr(rfd), p), ruleset, nil
}

// alive reports whether the process of pidfd has not been reaped.
func alive(pidfd *os.File) bool {
	return unix.PidfdSendSignal(int(pidfd.Fd()), 0, nil, 0) == nil
}

// openProcOf opens /proc/PID/name (close-on-exec, with flags) of the
// process pid that pidfd names, and checks the pidfd once it is open: a
// process not yet reaped still owns its pid, so the file opened is its
// own and never that of a process given the pid since. ErrNotRunning
// once it is gone. It returns the path opened too.
func openProcOf(pid int, pidfd *os.File, name string, flags int) (string, int, error) {
	p := "/proc/" + strconv.Itoa(pid) + "/" + name
	fd, err := unix.Open(p, flags|unix.O_CLOEXEC, 0)
	if err != nil || !alive(pidfd) {
		if err == nil {
			unix.Close(fd)
		}
		return p, -1, ErrNotRunning
	}
	return p, fd, nil
}

// cloneIntoPIDNS clones the child of plan k into the PID namespace of
// the process pidfd names: from a thread that joined it for its
// children, and went back to berth's own after (or else ends). It
// returns the child's pid and pidfd. A panic there fails the exec,
// naming it, and leaves berth running.
func cloneIntoPIDNS(k *childPlan, d *directFds, pidfd *os.File) (int, *os.File, error) {
	type result struct {
		pid   int
		pidfd *os.File
		err   error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = safe.Call("exec: clone into the container's PID namespace", func() (err error) {
			r.pid, r.pidfd, err = cloneFromPIDNS(k, d, pidfd)
			return err
		})
		done <- r
	}()
	r := <-done
	return r.pid, r.pidfd, r.err
}

// execHook, when set (tests), runs in cloneFromPIDNS once the thread has
// joined the container's PID namespace.
var execHook func()

// cloneFromPIDNS is cloneIntoPIDNS on its own goroutine: it locks the
// thread, which it unlocks only back in berth's PID namespace, even
// after a panic (so that the main thread, which cannot end, is not left
// in the container's namespace either).
func cloneFromPIDNS(k *childPlan, d *directFds, pidfd *os.File) (int, *os.File, error) {
	runtime.LockOSThread()
	own, err := unix.Open("/proc/thread-self/ns/pid", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return 0, nil, fmt.Errorf("exec: open own PID namespace: %w", err)
	}
	defer unix.Close(own)
	if err := unix.Setns(int(pidfd.Fd()), unix.CLONE_NEWPID); err != nil {
		runtime.UnlockOSThread()
		return 0, nil, fmt.Errorf("exec: join the container's PID namespace: %w", err)
	}
	// A thread that cannot go back ends with this goroutine.
	defer func() {
		if unix.Setns(own, unix.CLONE_NEWPID) == nil {
			runtime.UnlockOSThread()
		}
	}()
	if execHook != nil {
		execHook()
	}
	// A copy of berth's memory, never berth's own: the child joins a
	// cgroup whose processes are the container's, which can drive it out
	// of memory (and stop the child, so that the OOM killer finds it there
	// with berth's memory as its own).
	return cloneChild(k, d, 0, false)
}

// newExecPlan prepares what the child of an exec does: the plan of a
// direct start's child (credentials, seal, exec from the container's
// resolved config cfg and spec) with join and attach as its first steps.
func newExecPlan(cfg initConfig, spec Spec, d *directFds, pidfd, root *os.File, opts ExecOptions) (*childPlan, error) {
	k := &childPlan{joining: true, sock: int32(d.childSock.Fd()), errPipe: int32(d.errW.Fd()),
		rootfd: int32(root.Fd()), joinFd: int32(pidfd.Fd()), zero: [1]byte{'0'}, ruleset: -1}
	k.joinFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP
	if spec.Net != "host" {
		k.joinFlags |= unix.CLONE_NEWNET
	}
	if spec.UserNS != nil {
		k.joinFlags |= unix.CLONE_NEWUSER
	}
	for i, f := range []*os.File{opts.Stdin, opts.Stdout, opts.Stderr} {
		if f == nil || opts.TTY {
			f = d.null
		}
		k.stdio[i] = int32(f.Fd())
	}
	keep := []int32{k.errPipe, k.rootfd, k.joinFd, k.stdio[0], k.stdio[1], k.stdio[2]}
	for _, f := range d.cgroupTasks {
		k.cgroupTasks = append(k.cgroupTasks, int32(f.Fd()))
	}
	keep = append(keep, k.cgroupTasks...)
	if spec.OOMScoreAdj != nil {
		k.oomPath = &[]byte("/proc/self/oom_score_adj\x00")[0]
		k.oomValue = []byte(strconv.Itoa(*spec.OOMScoreAdj))
	}
	if opts.TTY {
		keep = append(keep, k.sock)
		k.ptmx = &[]byte("/dev/pts/ptmx\x00")[0]
		k.winsize = unix.Winsize{Row: opts.Rows, Col: opts.Cols}
		k.fdsAt = unix.CmsgLen(0)
		k.sendOOB = unix.UnixRights(0)
		k.sendIOV = unix.Iovec{Base: &k.zero[0]}
		k.sendIOV.SetLen(1)
		k.send = unix.Msghdr{Iov: &k.sendIOV, Control: &k.sendOOB[0]}
		k.send.SetIovlen(1)
		k.send.SetControllen(len(k.sendOOB))
	}
	if spec.Landlock != nil {
		// The very ruleset the first process was confined to, made at
		// the start (d.landlock, a copy closed once the child has
		// exec'd): never made again from the tree as the workload may
		// have changed it since, a path swapped for a symlink.
		if d.landlock == nil && LandlockABI() != 0 {
			return nil, errors.New("landlock: the container has no ruleset kept from its start: refusing exec")
		}
		if d.landlock != nil {
			k.ruleset = int32(d.landlock.Fd())
			keep = append(keep, k.ruleset)
		}
	}
	slices.Sort(keep)
	k.keep = slices.Compact(keep)
	if err := planCredentials(k, spec, cfg); err != nil {
		return nil, err
	}
	guard, err := cloneGuard()
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	k.guard = &unix.SockFprog{Len: uint16(len(guard)), Filter: &guard[0]}
	if k.seccompEarly { // with the exec's user: Start checked the container's
		if err := checkEarlyFilter(cfg.Seccomp, spec.User, k.capDrop); err != nil {
			return nil, err
		}
	}
	if err := planExec(k, spec); err != nil {
		return nil, err
	}
	if err := planLSM(k, spec); err != nil {
		return nil, err
	}
	return k, nil
}

// ErrTracesExecs is why a container whose processes could trace an
// exec's child is refused execs (and so health checks): see TracesExecs.
var ErrTracesExecs = errors.New("it has CAP_SYS_PTRACE without a user namespace, so its processes could trace the exec's process before it is confined (give it user_ns = true, or drop SYS_PTRACE)")

// TracesExecs reports whether the processes of a container of this spec,
// with the capabilities caps (nil: the defaults), could trace the child
// of an exec between its clone and its execve: while it has berth's
// capabilities and a copy of berth's memory, in the container's PID
// namespace. Non-dumpable (below) stops all but a tracer with
// CAP_SYS_PTRACE in berth's own user namespace: a container without a
// user namespace that was given it.
func (s Spec) TracesExecs(caps []string) bool {
	if caps == nil {
		caps = DefaultCaps
	}
	return s.UserNS == nil && slices.Contains(caps, "SYS_PTRACE")
}

// execCloned, set by tests, runs in berth while the child of an exec may
// still share its memory.
var execCloned func(pid int)

// execStartTimeout bounds the wait for an exec's child to exec.
var execStartTimeout = 10 * time.Second

// startTimeout is how long Exec waits for the command's execve.
func (o ExecOptions) startTimeout() time.Duration {
	if o.StartTimeout > 0 && o.StartTimeout < execStartTimeout {
		return o.StartTimeout
	}
	return execStartTimeout
}

// awaitExec reads the error pipe of a child as readChildError does, for
// at most bound; a child that has not exec'd by then is killed, and its
// record says so.
func awaitExec(r *os.File, kill func(), bound time.Duration) ([3]uint32, bool) {
	_ = r.SetReadDeadline(time.Now().Add(bound))
	data, err := io.ReadAll(io.LimitReader(r, 64))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return parseChildError(data)
	}
	kill()
	_ = r.SetReadDeadline(time.Time{})
	_, _ = io.ReadAll(r) // the end: the child no longer uses its plan
	return [3]uint32{stepTimeout, uint32(syscall.ETIMEDOUT)}, true
}
