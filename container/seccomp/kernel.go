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

// runningKernelInit computes runningKernel's value, once.
func runningKernelInit() (KernelVersion, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return KernelVersion{}, fmt.Errorf("seccomp: uname: %w", err)
	}
	v, err := ParseKernelVersion(unix.ByteSliceToString(u.Release[:]))
	if err != nil {
		return KernelVersion{}, fmt.Errorf("seccomp: uname release: %w", err)
	}
	return v, nil
}

// runningKernelOnce holds its result: a sync.OnceValues variable would be init
// code run in every berth process; a sync.Once is data.
var runningKernelOnce struct {
	sync.Once
	v   KernelVersion
	err error
}

func runningKernel() (KernelVersion, error) {
	runningKernelOnce.Do(func() { runningKernelOnce.v, runningKernelOnce.err = runningKernelInit() })
	return runningKernelOnce.v, runningKernelOnce.err
}
