package container

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The first process of a container started on the direct path (direct.go)
// runs no Go code of its own: from its clone to the workload's execve it
// makes only raw system calls on a childPlan the parent filled in
// beforehand, as syscall.forkAndExecInChild does. It shares berth's
// memory (CLONE_VM: no page tables copied, no copy-on-write faults in
// berth, nothing to tear down at its execve) and runs on a stack of its
// own (clone_GOARCH.s). Before the clone, runtime_BeforeFork blocks
// signals, which the child keeps blocked until it has reset their
// handlers (resetSignals): no Go signal handler ever runs in it.
// Everything the child runs is go:nosplit, allocates nothing, takes no
// lock and stores no pointer (no write barrier): it stores only integers,
// into its plan, which berth does not touch until the child has exec'd.

//go:linkname runtimeBeforeFork syscall.runtime_BeforeFork
func runtimeBeforeFork()

//go:linkname runtimeAfterFork syscall.runtime_AfterFork
func runtimeAfterFork()

// rawClone3 calls clone3(args, size), args with CLONE_VM: the child
// starts on the stack args names, in berth's address space, and calls
// childMain with the argument at the stack's top (clone_GOARCH.s).
func rawClone3(args *cloneArgs, size uintptr) (pid, errno uintptr)

// clone starts the child with clone3 and args, and returns its pid.
//
//go:noinline
//go:norace
//go:nocheckptr
func (k *childPlan) clone(args *cloneArgs) (uintptr, syscall.Errno) {
	runtimeBeforeFork()
	pid, errno := rawClone3(args, unsafe.Sizeof(*args))
	runtimeAfterFork()
	return pid, syscall.Errno(errno)
}

// childMain is the child, on its own stack.
//
//go:nosplit
//go:norace
//go:nocheckptr
func childMain(k *childPlan) {
	k.resetSignals()
	k.run()
}

// resetSignals gives every signal berth handles its default action, so
// that no Go signal handler can run in the child, which is no goroutine
// of berth's (its g register is whatever the cloning thread's was), and
// then unblocks what the cloning thread had unblocked. An ignored signal
// stays ignored, as across execve, but for 32 and 34, which berth boot
// ignores for itself (libcsignals.go). runtime_AfterForkInChild would do the
// same, but reads the cloning thread's m, which may be gone by then.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) resetSignals() {
	for sig := uintptr(1); sig <= 64; sig++ {
		if sig == uintptr(unix.SIGKILL) || sig == uintptr(unix.SIGSTOP) {
			continue
		}
		_, _, e := syscall.RawSyscall6(unix.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&k.sigDefault)), uintptr(unsafe.Pointer(&k.sigOld)), 8, 0, 0)
		if e == 0 && k.sigOld[0] == 1 && sig != 32 && sig != 34 {
			syscall.RawSyscall6(unix.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&k.sigIgnore)), 0, 8, 0, 0)
		}
	}
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&k.sigmask)), 0, 8, 0, 0)
}

// run is the child, from the clone to the workload's execve.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) run() {
	var step int
	var errno syscall.Errno
	if k.joining {
		// An exec into a running container (child_exec.go).
		step, errno = k.join()
		if errno == 0 {
			step, errno = k.credentials()
		}
		if errno == 0 {
			step, errno = k.attach()
		}
	} else {
		step, errno = k.enter()
		if errno == 0 {
			step, errno = k.await()
		}
		if errno == 0 {
			step, errno = k.credentials()
		}
	}
	if errno == 0 {
		step, errno = k.seal()
	}
	if errno == 0 {
		step, errno = k.exec()
	}
	k.fail(step, errno)
}

// enter closes what the child must not hold, joins its cgroup and cgroup
// namespace, and hands its PID and cgroup filesystems to berth.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) enter() (int, syscall.Errno) {
	if k.pdeathsig != 0 {
		if _, _, e := syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, k.pdeathsig, 0); e != 0 {
			return stepPdeathsig, e
		}
	}
	if step, e := k.closeInherited(); e != 0 {
		return step, e
	}
	for _, fd := range k.cgroupTasks {
		if _, _, e := syscall.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&k.zero[0])), 1); e != 0 {
			return stepJoinCgroup, e
		}
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWCGROUP, 0, 0); e != 0 {
		return stepCgroupNS, e
	}
	for i, t := range k.fsTypes {
		fd, _, e := syscall.RawSyscall(unix.SYS_FSOPEN, uintptr(unsafe.Pointer(t)), unix.FSOPEN_CLOEXEC, 0)
		if e != 0 {
			k.rec[2] = uint32(i)
			return stepFsopen, e
		}
		*(*int32)(unsafe.Pointer(&k.sendOOB[k.fdsAt+4*i])) = int32(fd)
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_SENDMSG, uintptr(k.sock), uintptr(unsafe.Pointer(&k.send)), 0); e != 0 {
		return stepHandOver, e
	}
	return 0, 0
}

// closeInherited closes every fd the child inherited but the plan's.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) closeInherited() (int, syscall.Errno) {
	lo := uintptr(0)
	for _, fd := range k.keep {
		if uintptr(fd) > lo {
			if _, _, e := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, lo, uintptr(fd)-1, 0); e != 0 {
				return stepCloseFds, e
			}
		}
		lo = uintptr(fd) + 1
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, lo, uintptr(^uint32(0)), 0); e != 0 {
		return stepCloseFds, e
	}
	return 0, 0
}

// await waits for berth's go-ahead, then enters the container's root
// and sets up the workload's stdio: the terminal berth sends with the
// go-ahead, or the stdio the plan names. Without a go-ahead (berth gave
// up) the child just ends.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) await() (int, syscall.Errno) {
	n, _, e := syscall.RawSyscall(unix.SYS_RECVMSG, uintptr(k.sock), uintptr(unsafe.Pointer(&k.recv)), unix.MSG_CMSG_CLOEXEC)
	if e != 0 {
		return stepAwait, e
	}
	if n != 1 || k.recvBuf[0] != 'g' {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 125, 0, 0)
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_FCHDIR, uintptr(k.rootfd), 0, 0); e != 0 {
		return stepRoot, e
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_CHROOT, uintptr(unsafe.Pointer(&dot[0])), 0, 0); e != 0 {
		return stepRoot, e
	}
	at := k.fdsAt
	if k.tty && uint64(k.recv.Controllen) >= uint64(at+4) {
		tty := *(*int32)(unsafe.Pointer(&k.recvOOB[at]))
		at += 4
		if _, _, e := syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); e != 0 {
			return stepTTY, e
		}
		if _, _, e := syscall.RawSyscall(unix.SYS_IOCTL, uintptr(tty), unix.TIOCSCTTY, 0); e != 0 {
			return stepTTY, e
		}
		k.stdio[0], k.stdio[1], k.stdio[2] = tty, tty, tty
	} else if _, _, e := syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); e != 0 {
		// A session of its own, without a controlling terminal: in
		// berth's, the workload could open /dev/tty — the terminal
		// berth run was started from — and push input into it
		// (TIOCSTI), to run as the host's user once berth has exited.
		return stepSession, e
	}
	if k.landlock && uint64(k.recv.Controllen) >= uint64(at+4) {
		k.ruleset = *(*int32)(unsafe.Pointer(&k.recvOOB[at]))
	}
	return k.dupStdio()
}

var dot = [2]byte{'.', 0}

// dupStdio puts the stdio fds at 0, 1 and 2, not close-on-exec: first
// each that sits below its slot moves above every fd the child holds,
// then each is duplicated onto its slot.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) dupStdio() (int, syscall.Errno) {
	next := int32(3)
	for _, fd := range k.keep {
		if fd >= next {
			next = fd + 1
		}
	}
	for i := range k.stdio {
		if k.stdio[i] >= next {
			next = k.stdio[i] + 1
		}
	}
	if k.ruleset >= next {
		next = k.ruleset + 1
	}
	// The ruleset, received at the lowest free fd, moves out of the
	// stdio's way.
	if k.ruleset >= 0 && k.ruleset <= 2 {
		if _, _, e := syscall.RawSyscall(unix.SYS_DUP3, uintptr(k.ruleset), uintptr(next), unix.O_CLOEXEC); e != 0 {
			return stepStdio, e
		}
		k.ruleset = next
		next++
	}
	for i := range k.stdio {
		if k.stdio[i] < int32(i) {
			if _, _, e := syscall.RawSyscall(unix.SYS_DUP3, uintptr(k.stdio[i]), uintptr(next), unix.O_CLOEXEC); e != 0 {
				return stepStdio, e
			}
			k.stdio[i] = next
			next++
		}
	}
	for i := range k.stdio {
		if k.stdio[i] == int32(i) {
			if _, _, e := syscall.RawSyscall(unix.SYS_FCNTL, uintptr(i), unix.F_SETFD, 0); e != 0 {
				return stepStdio, e
			}
			continue
		}
		if _, _, e := syscall.RawSyscall(unix.SYS_DUP3, uintptr(k.stdio[i]), uintptr(i), 0); e != 0 {
			return stepStdio, e
		}
	}
	return 0, 0
}

// credentials sets the rlimits, cuts the bounding set, switches to the
// workload's user and leaves it exactly its capabilities.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) credentials() (int, syscall.Errno) {
	for i := range k.rlimits {
		r := &k.rlimits[i]
		if _, _, e := syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, r.resource, uintptr(unsafe.Pointer(&r.lim)), 0, 0, 0); e != 0 {
			return stepRlimit, e
		}
	}
	// Without no_new_privs, Landlock and seccomp must go on while the
	// child still holds CAP_SYS_ADMIN.
	if k.early {
		if step, e := k.lsm(); e != 0 {
			return step, e
		}
	}
	if k.early {
		if step, e := k.installFilters(); e != 0 {
			return step, e
		}
	}
	for _, c := range k.capDrop {
		if _, _, e := syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0); e != 0 && e != unix.EINVAL {
			return stepBounding, e
		}
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); e != 0 {
		return stepKeepCaps, e
	}
	groups := uintptr(0)
	if len(k.groups) > 0 {
		groups = uintptr(unsafe.Pointer(&k.groups[0]))
	}
	if _, _, e := syscall.RawSyscall(sysSetgroups, uintptr(len(k.groups)), groups, 0); e != 0 {
		return stepGroups, e
	}
	if _, _, e := syscall.RawSyscall(sysSetresgid, k.gid, k.gid, k.gid); e != 0 {
		return stepGID, e
	}
	if _, _, e := syscall.RawSyscall(sysSetresuid, k.uid, k.uid, k.uid); e != 0 {
		return stepUID, e
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&k.capHdr)), uintptr(unsafe.Pointer(&k.capData[0])), 0); e != 0 {
		return stepCaps, e
	}
	if _, _, e := syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 {
		return stepAmbient, e
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 0, 0); e != 0 {
		return stepKeepCaps, e
	}
	return 0, 0
}

// exec stamps the trace and tries each candidate path, as a shell's PATH
// search does: a missing one is skipped, one that may not be executed is
// remembered and skipped, any other failure ends the search. It returns
// only on failure, naming the candidate (rec[2]) whose error counts.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) exec() (int, syscall.Errno) {
	if k.trace != nil {
		k.stamp()
	}
	if k.tinyInit {
		return k.execInit()
	}
	first, firstErr := -1, syscall.Errno(0)
	for i, p := range k.paths {
		_, _, e := syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(p)),
			uintptr(unsafe.Pointer(&k.argv[0])), uintptr(unsafe.Pointer(&k.envv[0])))
		switch {
		case e == unix.ENOENT || e == unix.ENOTDIR:
			if first < 0 {
				first, firstErr = i, e
			}
		case e == unix.EACCES:
			if first < 0 || firstErr != unix.EACCES {
				first, firstErr = i, e
			}
		default:
			k.rec[2] = uint32(i)
			return stepExec, e
		}
	}
	if first < 0 {
		first, firstErr = 0, unix.ENOENT
	}
	k.rec[2] = uint32(first)
	return stepExec, firstErr
}

// stamp writes "berth-trace exec NANOS" (CLOCK_MONOTONIC) to stderr. It
// divides by constants only: a division by a variable is a runtime call
// on 32-bit arm.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) stamp() {
	syscall.RawSyscall(unix.SYS_CLOCK_GETTIME, unix.CLOCK_MONOTONIC, uintptr(unsafe.Pointer(&k.ts)), 0)
	sec, nsec := uint32(k.ts.Sec), uint32(k.ts.Nsec)
	i := len(k.trace) - 1
	k.trace[i] = '\n'
	for n := 0; n < 9; n++ {
		i--
		k.trace[i] = byte('0' + nsec%10)
		nsec /= 10
	}
	for {
		i--
		k.trace[i] = byte('0' + sec%10)
		if sec /= 10; sec == 0 {
			break
		}
	}
	// The buffer holds the prefix, then room for 19 digits: move the
	// prefix up against the digits.
	for j := k.traceLen - 1; j >= 0; j-- {
		i--
		k.trace[i] = k.trace[j]
	}
	syscall.RawSyscall(unix.SYS_WRITE, 2, uintptr(unsafe.Pointer(&k.trace[i])), uintptr(len(k.trace)-i))
}

// fail reports step and errno on the error pipe and ends the child: 127
// when the command was not found, 126 when it could not be executed,
// 125 for any other step.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) fail(step int, errno syscall.Errno) {
	k.rec[0], k.rec[1] = uint32(step), uint32(errno)
	syscall.RawSyscall(unix.SYS_WRITE, uintptr(k.errPipe), uintptr(unsafe.Pointer(&k.rec[0])), unsafe.Sizeof(k.rec))
	code := uintptr(125)
	if step == stepExec {
		code = 126
		if errno == unix.ENOENT || errno == unix.ENOTDIR {
			code = 127
		}
	}
	syscall.RawSyscall(unix.SYS_EXIT_GROUP, code, 0, 0)
}
