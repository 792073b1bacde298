package seccomp

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestVerdictMatchesVM: Verdict answers as golang.org/x/net/bpf's
// interpreter does on the default profile's program and on one with
// argument rules, for every syscall number of the native table and
// arguments that reach the rules' branches.
func TestVerdictMatchesVM(t *testing.T) {
	p, err := Parse(DefaultJSON())
	if err != nil {
		t.Fatal(err)
	}
	withArgs, err := Parse([]byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
		{"names": ["setresuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0, "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]},
		{"names": ["prctl"], "action": "SCMP_ACT_KILL", "args": [{"index": 0, "value": 24, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 4294967296, "op": "SCMP_CMP_GE"}]},
		{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]},
		{"names": ["setresgid"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_GT"}]},
		{"names": ["setgroups"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
		{"names": ["capset"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_LE"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	native := platforms[runtime.GOARCH].native
	a, _ := abiByName(native)
	for name, prof := range map[string]*Profile{"default": p, "with args": withArgs} {
		prog, err := prof.CompileFor(Target{Arch: runtime.GOARCH, Caps: DefaultProgramCaps, Kernel: KernelVersion{Major: 6, Minor: 1}})
		if err != nil {
			t.Fatal(err)
		}
		v := newVM(t, prog)
		argSets := [][6]uint64{{}, {1, 1, 1}, {24, 1 << 32}, {24, 5}, {8}, {9, 6}, {0x7fffffff, 1 << 40}, {7, 4}}
		for nr := uint32(0); nr < 1024; nr++ {
			for _, args := range argSets {
				got, ok := Verdict(prog, Call{Nr: nr, Args: args})
				want := v.run(t, call{arch: a.audit, nr: nr, args: args})
				if !ok || got != want {
					t.Fatalf("%s: nr %d args %v: Verdict %s (ok %v), the VM %s", name, nr, args, verdict(got), ok, verdict(want))
				}
			}
		}
	}
	if _, ok := Verdict([]unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 64}}, Call{}); ok {
		t.Error("a load past seccomp_data was taken")
	}
	if _, ok := Verdict([]unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_IMM}}, Call{}); ok {
		t.Error("an instruction Compile does not emit was taken")
	}
}
