package seccomp

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// RunningKernel returns the version of the kernel this process runs on,
// read once with uname(2).
func RunningKernel() (KernelVersion, error) {
	return runningKernel()
}

var runningKernel = sync.OnceValues(func() (KernelVersion, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return KernelVersion{}, fmt.Errorf("seccomp: uname: %w", err)
	}
	v, err := ParseKernelVersion(unix.ByteSliceToString(u.Release[:]))
	if err != nil {
		return KernelVersion{}, fmt.Errorf("seccomp: uname release: %w", err)
	}
	return v, nil
})
