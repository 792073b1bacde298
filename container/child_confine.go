package container

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The child's last steps before the workload's execve (child.go): the
// working directory checked inside the root, fds made close-on-exec,
// no_new_privs, the LSM steps (Landlock, AppArmor, SELinux) and the
// seccomp filter. The same rules hold as in child.go: raw system calls
// only, nosplit, no allocation.

// seal enters the working directory, as the workload's user, and checks
// it lies inside the root: a leaked directory fd would show as
// "(unreachable)" (CVE-2024-21626). Then every fd above 2 becomes
// close-on-exec, and no_new_privs, Landlock and the seccomp filter go
// on, last.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) seal() (int, syscall.Errno) {
	if _, _, e := syscall.RawSyscall(unix.SYS_CHDIR, uintptr(unsafe.Pointer(k.cwd)), 0, 0); e != 0 {
		return stepChdir, e
	}
	// The kernel prefixes a directory outside the root with
	// "(unreachable)"; a path it cannot return (ERANGE) is refused too.
	_, _, e := syscall.RawSyscall(unix.SYS_GETCWD, uintptr(unsafe.Pointer(&k.cwdBuf[0])), uintptr(len(k.cwdBuf)), 0)
	if e != 0 {
		return stepCwdOutside, e
	}
	if k.cwdBuf[0] != '/' {
		return stepCwdOutside, unix.EPERM
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, 3, uintptr(^uint32(0)), unix.CLOSE_RANGE_CLOEXEC); e != 0 {
		return stepCloexec, e
	}
	if k.noNewPrivs {
		if _, _, e := syscall.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
			return stepNoNewPrivs, e
		}
	}
	if !k.early {
		if step, e := k.lsm(); e != 0 {
			return step, e
		}
	}
	if !k.early {
		if step, e := k.installFilters(); e != 0 {
			return step, e
		}
	}
	return 0, 0
}

// atFDCWD is AT_FDCWD (-100) as a system call's argument.
const atFDCWD = ^uintptr(99)

// lsm sets the exec transitions of AppArmor and SELinux (each written
// to the first of its /proc files that exists), then confines the child
// to its Landlock ruleset, if any, which would refuse those writes. It
// goes on before seccomp, whose default profile refuses Landlock's
// system calls.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) lsm() (int, syscall.Errno) {
	for i := range k.attrs {
		a := &k.attrs[i]
		fd, e := uintptr(0), syscall.Errno(unix.ENOENT)
		for _, p := range a.paths {
			if p == nil {
				break
			}
			if fd, _, e = syscall.RawSyscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(p)), unix.O_WRONLY|unix.O_CLOEXEC, 0, 0, 0); e != unix.ENOENT {
				break
			}
		}
		if e == 0 {
			if e = k.procAttrOK(fd); e == 0 {
				_, _, e = syscall.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&a.data[0])), uintptr(len(a.data)))
			}
			syscall.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
		}
		if e != 0 {
			k.rec[2] = uint32(i)
			return stepExecAttr, e
		}
	}
	if k.ruleset >= 0 {
		if _, _, e := syscall.RawSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(k.ruleset), 0, 0); e != 0 {
			return stepLandlock, e
		}
	}
	return 0, 0
}

// procMagic is procfs's f_type (PROC_SUPER_MAGIC).
const procMagic = 0x9fa0

// procAttrOK checks that fd, an attr file the child opened through the
// container's /proc, is procfs's own: on a procfs (not a file of
// another filesystem mounted over it, CVE-2019-16884) and on the mount
// at /proc (not a procfs file bound over it). The container's /proc is
// its own when it joins a running container (exec, a health check), and
// one with CAP_SYS_ADMIN could otherwise turn the label write into a
// harmless one and run the command unconfined. EXDEV says it is not.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) procAttrOK(fd uintptr) syscall.Errno {
	// RawSyscall6 only, not RawSyscall, which would call it: the chain
	// from the clone stays within the nosplit stack limit, even as a
	// fuzzing build instruments it.
	if _, _, e := syscall.RawSyscall6(unix.SYS_FSTATFS, fd, uintptr(unsafe.Pointer(&k.attrFS)), 0, 0, 0, 0); e != 0 {
		return e
	}
	if k.attrFS.Type != procMagic {
		return unix.EXDEV
	}
	_, _, e1 := syscall.RawSyscall6(unix.SYS_STATX, fd, uintptr(unsafe.Pointer(&k.empty[0])), unix.AT_EMPTY_PATH, unix.STATX_MNT_ID, uintptr(unsafe.Pointer(&k.attrMnt)), 0)
	_, _, e2 := syscall.RawSyscall6(unix.SYS_STATX, atFDCWD, uintptr(unsafe.Pointer(&procPath[0])), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, uintptr(unsafe.Pointer(&k.procMnt)), 0)
	if e1 != 0 || e2 != 0 || k.attrMnt.Mask&unix.STATX_MNT_ID == 0 || k.procMnt.Mask&unix.STATX_MNT_ID == 0 {
		return 0 // a kernel before 5.8 has no mount ids: the type check stands alone
	}
	if k.attrMnt.Mnt_id != k.procMnt.Mnt_id {
		return unix.EXDEV
	}
	return 0
}

// procPath is "/proc", NUL-terminated, for procAttrOK.
var procPath = [...]byte{'/', 'p', 'r', 'o', 'c', 0}

// installFilters loads the clone guard of an exec, then the profile's
// filter, each if the plan has one: the guard first, so that no profile
// (one refusing seccomp(2) itself, say) can keep it out. The guard goes
// on with SPEC_ALLOW: it guards berth, it does not sandbox the process,
// and must not force a Speculative Store Bypass mitigation the profile
// (with that flag, or unconfined) did not ask for; a profile without it
// still forces one with its own filter.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) installFilters() (int, syscall.Errno) {
	if k.guard != nil {
		r, _, e := syscall.RawSyscall6(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
			unix.SECCOMP_FILTER_FLAG_TSYNC|unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW, uintptr(unsafe.Pointer(k.guard)), 0, 0, 0)
		if e == 0 && r != 0 {
			e = unix.ESRCH
		}
		if e != 0 {
			return stepCloneGuard, e
		}
	}
	if k.seccomp != nil {
		r, _, e := syscall.RawSyscall6(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
			unix.SECCOMP_FILTER_FLAG_TSYNC|k.seccompFlags, uintptr(unsafe.Pointer(k.seccomp)), 0, 0, 0)
		if e == 0 && r != 0 {
			e = unix.ESRCH
		}
		if e != 0 {
			return stepSeccomp, e
		}
	}
	return 0, 0
}
