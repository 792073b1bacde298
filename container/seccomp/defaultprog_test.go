package seccomp

import (
	"bytes"
	"flag"
	"os"
	"runtime"
	"slices"
	"testing"
)

var update = flag.Bool("update", false, "rewrite defaultprog_ARCH.bpf (go generate)")

// TestDefaultProgram: each embedded program is what Compile gives for its
// architecture, the default capabilities and DefaultProgramKernel — and
// for the newest kernel too, so that it holds on every kernel berth takes
// it for; DefaultProgram gives it only for those capabilities and
// kernels.
func TestDefaultProgram(t *testing.T) {
	p, err := Parse(DefaultJSON())
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64", "arm", "riscv64"} {
		want, err := p.CompileFor(Target{Arch: arch, Caps: DefaultProgramCaps, Kernel: DefaultProgramKernel})
		if err != nil {
			t.Fatal(err)
		}
		newest, err := p.CompileFor(Target{Arch: arch, Caps: DefaultProgramCaps, Kernel: KernelVersion{Major: 99}})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(want, newest) {
			t.Errorf("%s: a rule of the default profile needs a kernel newer than %s: raise DefaultProgramKernel", arch, DefaultProgramKernel)
		}
		file := "defaultprog_" + arch + ".bpf"
		if *update {
			if err := os.WriteFile(file, EncodeProgram(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, EncodeProgram(want)) {
			t.Errorf("%s is not the program Compile gives (%v): run go generate ./container/seccomp", file, err)
		}
	}
	if *update {
		return // this test binary embeds the files as they were: the next run checks them
	}
	native, err := p.CompileFor(Target{Arch: runtime.GOARCH, Caps: DefaultProgramCaps, Kernel: KernelVersion{Major: 6, Minor: 1}})
	if err != nil {
		t.Fatal(err)
	}
	caps := []string{"cap_kill"}
	for _, c := range DefaultProgramCaps[:len(DefaultProgramCaps)-1] {
		caps = append(caps, "CAP_"+c)
	}
	slices.Reverse(caps)
	if prog, ok := DefaultProgram(caps, KernelVersion{Major: 6, Minor: 1}); !ok || !slices.Equal(prog, native) {
		t.Errorf("DefaultProgram with the default capabilities on 6.1: ok %v, the compiled program: %v", ok, slices.Equal(prog, native))
	}
	for _, c := range []struct {
		name string
		caps []string
		k    KernelVersion
	}{
		{"a capability fewer", DefaultProgramCaps[1:], KernelVersion{Major: 6, Minor: 1}},
		{"a capability more", append([]string{"SYS_ADMIN"}, DefaultProgramCaps...), KernelVersion{Major: 6, Minor: 1}},
		{"an older kernel", DefaultProgramCaps, KernelVersion{Major: 5, Minor: 4}},
	} {
		if _, ok := DefaultProgram(c.caps, c.k); ok {
			t.Errorf("%s: the embedded program was given", c.name)
		}
	}
}
