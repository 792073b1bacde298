package container

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// berth is non-dumpable while the child of an exec is between its clone
// and its execve. The child runs in a copy of berth's memory (a fork:
// cloneChild) in the container's PID namespace beside the container's
// own processes, which could otherwise, once it has the container's
// credentials, ptrace it or read its /proc/PID/mem: a copy of PID 1's
// memory, its secrets with it (the class of CVE-2016-9962).
// Non-dumpable, that takes CAP_SYS_PTRACE in the host's user namespace.
// Dumpability belongs to the memory, and a fork's copy takes its
// setting from berth's at the clone: undumpable counts the execs under
// way and restores berth's own setting after the last.
var undumpable struct {
	sync.Mutex
	n     int
	saved int
}

// holdUndumpable makes berth non-dumpable for one more exec under way.
func holdUndumpable() error {
	undumpable.Lock()
	defer undumpable.Unlock()
	if undumpable.n == 0 {
		saved, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err != nil {
			return fmt.Errorf("read dumpable: %w", err)
		}
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			return fmt.Errorf("set non-dumpable: %w", err)
		}
		undumpable.saved = saved
	}
	undumpable.n++
	return nil
}

// releaseUndumpable ends one exec's hold, restoring berth's own setting
// after the last.
func releaseUndumpable() {
	undumpable.Lock()
	defer undumpable.Unlock()
	if undumpable.n--; undumpable.n == 0 {
		_ = unix.Prctl(unix.PR_SET_DUMPABLE, uintptr(undumpable.saved), 0, 0, 0)
	}
}
