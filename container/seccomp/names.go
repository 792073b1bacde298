package seccomp

import (
	"slices"

	"berth/container/seccomp/internal/sysnum/aarch64"
	"berth/container/seccomp/internal/sysnum/arm"
	"berth/container/seccomp/internal/sysnum/i386"
	"berth/container/seccomp/internal/sysnum/riscv64"
	"berth/container/seccomp/internal/sysnum/x32"
	"berth/container/seccomp/internal/sysnum/x86_64"
)

// allNames are the sorted system call names of every ABI this package
// knows, linked in every binary (the names only, not the numbers): a
// name in none of them is one berth cannot know of (UnknownSyscalls).
var allNames = [][]string{x86_64.Names, i386.Names, x32.Names, aarch64.Names, arm.Names, riscv64.Names}

// knownName reports whether some ABI this package knows has the system
// call name.
func knownName(name string) bool {
	for _, names := range allNames {
		if _, ok := slices.BinarySearch(names, name); ok {
			return true
		}
	}
	return false
}
