package main

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cloneParent tries clone and clone3, each with CLONE_PARENT, and
// prints "clone: allowed" or "clone: denied (REASON)", and the same for
// clone3. A child that is made exits at once, as the child of this
// process's parent.
func cloneParent() {
	_, e := rawClone(unix.SYS_CLONE, unix.CLONE_PARENT|uintptr(syscall.SIGCHLD), 0)
	report("clone", e)
	args := cloneArgs{flags: unix.CLONE_PARENT} // its exit signal is the caller's own
	_, e = rawClone(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	report("clone3", e)
}

// cloneArgs is the kernel's struct clone_args, its first version.
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal uint64
	stack, stackSize, tls                         uint64
}

// rawClone makes the system call nr (clone or clone3) with a1 and a2:
// without CLONE_VM, the child is a copy of this process with only this
// thread, which makes one more system call, exit_group, and no Go call.
//
//go:nosplit
func rawClone(nr, a1, a2 uintptr) (uintptr, syscall.Errno) {
	pid, _, e := syscall.RawSyscall6(nr, a1, a2, 0, 0, 0, 0)
	if e == 0 && pid == 0 {
		syscall.RawSyscall6(syscall.SYS_EXIT_GROUP, 0, 0, 0, 0, 0, 0)
	}
	return pid, e
}

func report(name string, e syscall.Errno) {
	if e != 0 {
		fmt.Printf("%s: denied (%s)\n", name, unix.ErrnoName(e))
		return
	}
	fmt.Printf("%s: allowed\n", name)
}
