package seccomp

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// filterFlags are the profile flags this package passes to the kernel
// when it installs the profile's filter, as runc does: TSYNC (always set
// anyway), LOG (log every action but allow, kernel 4.14) and SPEC_ALLOW
// (no forced Speculative Store Bypass mitigation, kernel 4.17).
// SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV belongs to notify listeners,
// which are not supported.
var filterFlags = map[string]uint{
	"SECCOMP_FILTER_FLAG_TSYNC":      unix.SECCOMP_FILTER_FLAG_TSYNC,
	"SECCOMP_FILTER_FLAG_LOG":        unix.SECCOMP_FILTER_FLAG_LOG,
	"SECCOMP_FILTER_FLAG_SPEC_ALLOW": unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
}

// FilterFlags returns the SECCOMP_FILTER_FLAG_* bits the profile's flags
// ask for, for InstallFlags.
func (p *Profile) FilterFlags() (uint, error) {
	var bits uint
	for i, name := range p.Flags {
		bit, ok := filterFlags[name]
		if !ok {
			return 0, fmt.Errorf("flags[%d]: unsupported flag %q", i, name)
		}
		bits |= bit
	}
	return bits, nil
}

// Install loads prog as a seccomp filter (seccomp(2),
// SECCOMP_SET_MODE_FILTER) on every thread of the process
// (SECCOMP_FILTER_FLAG_TSYNC). The caller must have set no_new_privs
// (prctl PR_SET_NO_NEW_PRIVS) or hold CAP_SYS_ADMIN. Filters only ever
// add up: there is no way back, so a container init calls this last,
// right before execve(2), on the thread that calls execve.
func Install(prog []unix.SockFilter) error {
	return InstallFlags(prog, 0)
}

// InstallFlags is Install with extra SECCOMP_FILTER_FLAG_* bits, such as
// those of Profile.FilterFlags.
func InstallFlags(prog []unix.SockFilter, flags uint) error {
	if len(prog) == 0 || len(prog) > unix.BPF_MAXINSNS {
		return fmt.Errorf("seccomp: install filter: %d instructions, want 1 to %d", len(prog), unix.BPF_MAXINSNS)
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP,
		unix.SECCOMP_SET_MODE_FILTER,
		uintptr(flags|unix.SECCOMP_FILTER_FLAG_TSYNC),
		uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	switch {
	case errno == unix.EACCES:
		return errors.New("seccomp: install filter: permission denied: set no_new_privs first or hold CAP_SYS_ADMIN")
	case errno == unix.EINVAL && flags != 0:
		return fmt.Errorf("seccomp: install filter with flags %s: %w", strings.Join(FlagNames(flags), ", "), errno)
	case errno != 0:
		return fmt.Errorf("seccomp: install filter: %w", errno)
	case r != 0:
		// With TSYNC a positive result is a thread that could not
		// take the filter (it has a diverging one); nothing was loaded.
		return fmt.Errorf("seccomp: install filter: thread %d cannot synchronize", r)
	}
	return nil
}

// CheckFlags asks the kernel whether it knows each SECCOMP_FILTER_FLAG_*
// bit of flags, without installing anything: seccomp(2) refuses a flag
// it does not know with EINVAL before it reads the filter, which is
// NULL here (EFAULT). The error names the first flag refused.
func CheckFlags(flags uint) error {
	for bit := uint(1); bit != 0 && bit <= flags; bit <<= 1 {
		if flags&bit == 0 {
			continue
		}
		_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(bit), 0)
		if errno == unix.EINVAL {
			return fmt.Errorf("seccomp: the kernel refuses the filter flag %s", flagName(bit))
		}
	}
	return nil
}

// FlagNames returns the names of the SECCOMP_FILTER_FLAG_* bits of flags.
func FlagNames(flags uint) []string {
	var out []string
	for bit := uint(1); bit != 0 && bit <= flags; bit <<= 1 {
		if flags&bit != 0 {
			out = append(out, flagName(bit))
		}
	}
	return out
}

// flagName names one SECCOMP_FILTER_FLAG_* bit.
func flagName(bit uint) string {
	for name, b := range filterFlags {
		if b == bit {
			return name
		}
	}
	return fmt.Sprintf("%#x", bit)
}
