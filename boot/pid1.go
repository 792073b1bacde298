package boot

import (
	"os"

	"golang.org/x/sys/unix"
)

// procPidInitIno is the inode number of the initial PID namespace
// (PROC_PID_INIT_INO in the kernel's include/linux/proc_ns.h): fixed, so a
// process can tell the machine's PID namespace from a container's.
const procPidInitIno = 0xEFFFFFFC

// IsMachineInit reports whether this process is the machine's init: PID 1
// of the initial PID namespace. The first process of a container is PID 1
// too, of its own namespace, and must not boot: it always has /proc (every
// runtime mounts it), where /proc/self/ns/pid names its namespace. The
// kernel starts the machine's init before anything is mounted, so there a
// missing /proc means the machine's init.
func IsMachineInit() bool {
	if os.Getpid() != 1 {
		return false
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil {
		return true
	}
	return st.Ino == procPidInitIno
}
