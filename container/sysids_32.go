//go:build arm || 386

package container

import "golang.org/x/sys/unix"

// The system calls that take 32-bit user and group ids; the unsuffixed
// ones take 16-bit ids on these architectures.
const (
	sysSetgroups = unix.SYS_SETGROUPS32
	sysSetresuid = unix.SYS_SETRESUID32
	sysSetresgid = unix.SYS_SETRESGID32
)
