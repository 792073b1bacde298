package seccomp

import (
	"slices"
	"testing"
)

// TestUnknownSyscalls checks which names are unknown: those no ABI of
// the program has, of the rules in force only. The default profile has
// none on any platform.
func TestUnknownSyscalls(t *testing.T) {
	k := KernelVersion{6, 1}
	for arch := range platforms {
		got, err := Default().UnknownSyscalls(Target{Arch: arch, Kernel: k})
		if err != nil || len(got) != 0 {
			t.Errorf("default profile on %s: unknown %v, %v", arch, got, err)
		}
	}
	p := &Profile{DefaultAction: ActErrno, Syscalls: []Syscall{
		{Names: []string{"read", "future_call", "socketcall", "write", "riscv_hwprobe"}, Action: ActAllow},
		{Names: []string{"another_new_call", "future_call"}, Action: ActAllow},
		{Names: []string{"only_elsewhere"}, Action: ActAllow, Includes: &Filter{Arches: []string{"s390x"}}},
		{Names: []string{"needs_admin"}, Action: ActAllow, Includes: &Filter{Caps: []string{"CAP_SYS_ADMIN"}}},
	}}
	got, err := p.UnknownSyscalls(Target{Arch: "amd64", Kernel: k})
	if want := []string{"another_new_call", "future_call"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("amd64: %v, %v; want %v", got, err, want)
	}
	got, err = p.UnknownSyscalls(Target{Arch: "arm", Kernel: k, Caps: []string{"SYS_ADMIN"}})
	if want := []string{"another_new_call", "future_call", "needs_admin"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("arm with CAP_SYS_ADMIN: %v, %v; want %v", got, err, want)
	}
}
