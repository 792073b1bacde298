//go:build !arm && !386

package container

import "golang.org/x/sys/unix"

// The system calls that set user and group ids.
const (
	sysSetgroups = unix.SYS_SETGROUPS
	sysSetresuid = unix.SYS_SETRESUID
	sysSetresgid = unix.SYS_SETRESGID
)
