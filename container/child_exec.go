package container

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The child of an exec (exec.go) is the child of a direct start with
// other first steps: instead of new namespaces, a tree built by berth
// and a go-ahead, it joins those of a running container (join), and it
// takes its stdio after its credentials (attach), so that a terminal is
// opened as the workload's own user. credentials, seal and exec are the
// direct start's, on a plan made from the container's own resolved spec.

// join closes what the child must not hold, sets the container's
// oom_score_adj, joins its cgroup (v1: tasks files the parent
// opened; v2: the child was born in it) and, through the pidfd of the
// container's first process, all of its namespaces at once — its user
// namespace first, when it has one — then enters the root of that
// process, which the parent opened and checked against the pidfd.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) join() (int, syscall.Errno) {
	if step, e := k.closeInherited(); e != 0 {
		return step, e
	}
	// oomPath and ptmx are absolute: openat ignores its dirfd.
	if k.oomPath != nil {
		fd, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, 0, uintptr(unsafe.Pointer(k.oomPath)), unix.O_WRONLY|unix.O_CLOEXEC, 0, 0, 0)
		if e != 0 {
			return stepOOMScore, e
		}
		_, _, e = syscall.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&k.oomValue[0])), uintptr(len(k.oomValue)))
		syscall.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
		if e != 0 {
			return stepOOMScore, e
		}
	}
	for _, fd := range k.cgroupTasks {
		if _, _, e := syscall.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&k.zero[0])), 1); e != 0 {
			return stepJoinCgroup, e
		}
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_SETNS, uintptr(k.joinFd), k.joinFlags, 0); e != 0 {
		return stepJoinNS, e
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_FCHDIR, uintptr(k.rootfd), 0, 0); e != 0 {
		return stepRoot, e
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_CHROOT, uintptr(unsafe.Pointer(&dot[0])), 0, 0); e != 0 {
		return stepRoot, e
	}
	return 0, 0
}

// attach sets up the workload's stdio, as its own user: with a terminal,
// a new one of the container's devpts — its master, sized, goes to berth
// over the socket, its slave becomes the controlling terminal and stdio;
// otherwise the stdio fds the plan names.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) attach() (int, syscall.Errno) {
	if k.ptmx == nil {
		// A session of its own, as a start's workload (child.go).
		if _, _, e := syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); e != 0 {
			return stepSession, e
		}
		return k.dupStdio()
	}
	master, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, 0, uintptr(unsafe.Pointer(k.ptmx)), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0, 0, 0)
	if e != 0 {
		return stepTTY, e
	}
	unlock := int32(0)
	if _, _, e := syscall.RawSyscall(unix.SYS_IOCTL, master, unix.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		return stepTTY, e
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_IOCTL, master, unix.TIOCSWINSZ, uintptr(unsafe.Pointer(&k.winsize))); e != 0 {
		return stepTTY, e
	}
	// The peer, opened through the master: no path that the container
	// could have replaced, and proof that master is a terminal's master.
	slave, _, e := syscall.RawSyscall(unix.SYS_IOCTL, master, unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if e != 0 {
		return stepTTY, e
	}
	*(*int32)(unsafe.Pointer(&k.sendOOB[k.fdsAt])) = int32(master)
	if _, _, e := syscall.RawSyscall(unix.SYS_SENDMSG, uintptr(k.sock), uintptr(unsafe.Pointer(&k.send)), 0); e != 0 {
		return stepHandOver, e
	}
	syscall.RawSyscall(unix.SYS_CLOSE, master, 0, 0)
	if _, _, e := syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0); e != 0 {
		return stepTTY, e
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_IOCTL, slave, unix.TIOCSCTTY, 0); e != 0 {
		return stepTTY, e
	}
	k.stdio[0], k.stdio[1], k.stdio[2] = int32(slave), int32(slave), int32(slave)
	return k.dupStdio()
}
