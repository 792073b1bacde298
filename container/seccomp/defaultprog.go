package seccomp

import (
	"slices"

	"golang.org/x/sys/unix"
)

//go:generate go test -run TestDefaultProgram -update .

// The default profile compiled at build time. Compiling Docker's profile
// is the largest step of a container's first start on a small board, and
// most containers run it with the default capabilities: berth embeds that
// program for its architecture (defaultprog_ARCH.bpf, written by go
// generate; TestDefaultProgram fails when it is not what Compile gives),
// and uses it for a container whose capabilities are DefaultProgramCaps,
// on a kernel at least DefaultProgramKernel. Any other container's filter
// is compiled at run time.

// DefaultProgramCaps are the capabilities the embedded program is
// compiled for: containerd's defaults, container.DefaultCaps.
var DefaultProgramCaps = []string{
	"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE", "KILL",
}

// DefaultProgramKernel is the kernel the embedded program is compiled
// for: the oldest berth runs containers on. No rule of the profile needs
// a newer one (TestDefaultProgram checks), so the program is that of any
// newer kernel too.
var DefaultProgramKernel = KernelVersion{Major: 5, Minor: 6}

// DefaultProgram returns the default profile's program for this
// architecture, compiled at build time, when caps (in any order and case,
// with or without CAP_) are DefaultProgramCaps and kernel is at least
// DefaultProgramKernel; ok is false otherwise.
func DefaultProgram(caps []string, kernel KernelVersion) (prog []unix.SockFilter, ok bool) {
	if len(defaultProgram) == 0 || !kernel.AtLeast(DefaultProgramKernel) || !sameCaps(caps, DefaultProgramCaps) {
		return nil, false
	}
	prog, err := DecodeProgram(defaultProgram)
	return prog, err == nil
}

// sameCaps reports whether a and b name the same capabilities.
func sameCaps(a, b []string) bool {
	norm := func(caps []string) []string {
		out := make([]string, len(caps))
		for i, c := range caps {
			out[i] = capName(c)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}
