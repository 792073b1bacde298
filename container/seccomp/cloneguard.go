package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// CloneGuard returns the filter berth stacks, besides the profile's, in
// the process of an exec (and so of a health check). That process is
// berth's child, not the container init's: a child it made with
// CLONE_PARENT would be berth's too, and PID 1 would spend its own CPU,
// outside the container's limits, reaping them by the thousand. The
// filter refuses, on every ABI the GOARCH arch runs (an ABI it does not
// know kills the process, as a compiled profile's does):
//
//   - clone with CLONE_PARENT in its flags, the first argument on every
//     platform berth builds for (only s390 puts them second): EPERM;
//   - clone3, whose flags lie in memory a filter cannot read: ENOSYS,
//     on which glibc and musl fall back to clone (Docker's default
//     profile refuses it so too).
//
// Everything else is allowed. The filter is inherited by the process's
// descendants; their CLONE_PARENT children would be the exec'd
// process's, which the guard refuses them as well.
func CloneGuard(arch string) ([]unix.SockFilter, error) {
	pf, ok := platforms[arch]
	if !ok {
		return nil, fmt.Errorf("seccomp: clone guard for %s: unsupported GOARCH (have amd64, arm64, arm, riscv64)", arch)
	}
	every := &Profile{Architectures: pf.others}
	sections, err := every.sections(arch)
	if err != nil {
		return nil, fmt.Errorf("seccomp: clone guard for %s: %w", arch, err)
	}
	b := newBuilder()
	entries := make([]label, len(sections))
	for i := len(sections) - 1; i >= 0; i-- {
		if entries[i], err = guardSection(b, sections[i]); err != nil {
			return nil, fmt.Errorf("seccomp: clone guard for %s: %w", arch, err)
		}
	}
	next := b.ret(retKillProcess)
	for i := len(sections) - 1; i >= 0; i-- {
		next = b.jump(unix.BPF_JEQ, sections[i].audit, entries[i], next)
	}
	b.load(offArch, next)
	return b.program(), nil
}

// guardSection writes the clone guard for the ABIs of one
// seccomp_data.arch value and returns its entry.
func guardSection(b *builder, s section) (label, error) {
	allow := b.ret(retAllow)
	flags := b.jump(unix.BPF_JSET, unix.CLONE_PARENT, b.ret(retEPERM), allow)
	// CLONE_PARENT is in the low word, which is the caller's on every ABI.
	flags = b.load(argLow(0), flags)
	next := allow
	for _, a := range s.abis {
		table := tables()[a.table]
		clone, ok1 := table.lookup("clone")
		clone3, ok2 := table.lookup("clone3")
		if !ok1 || !ok2 {
			return 0, fmt.Errorf("no clone or clone3 in the %s syscall table", a.table)
		}
		next = b.jump(unix.BPF_JEQ, clone3, b.ret(retENOSYS), next)
		next = b.jump(unix.BPF_JEQ, clone, flags, next)
	}
	return b.load(offNr, next), nil
}
