package seccomp

import (
	"slices"
	"testing"
)

// BenchmarkCompileDefault measures what a container start pays without a
// Cache: compiling Docker's profile for containerd's capabilities.
func BenchmarkCompileDefault(b *testing.B) {
	for _, goarch := range []string{"amd64", "arm64", "arm", "riscv64"} {
		b.Run(goarch, func(b *testing.B) {
			p := Default()
			t := Target{Arch: goarch, Caps: containerdCaps, Kernel: KernelVersion{6, 1}}
			var n int
			for b.Loop() {
				prog, err := p.CompileFor(t)
				if err != nil {
					b.Fatal(err)
				}
				n = len(prog)
			}
			b.ReportMetric(float64(n), "insns")
		})
	}
}

// BenchmarkCacheHit measures a container start with a Cache.
func BenchmarkCacheHit(b *testing.B) {
	var c Cache
	p := Default()
	t := Target{Arch: "amd64", Caps: containerdCaps, Kernel: KernelVersion{6, 1}}
	for b.Loop() {
		if _, err := c.Compile(p, t); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDefault measures parsing the embedded profile.
func BenchmarkDefault(b *testing.B) {
	for b.Loop() {
		Default()
	}
}

func TestCache(t *testing.T) {
	var c Cache
	p := Default()
	tgt := Target{Arch: "arm64", Caps: containerdCaps, Kernel: KernelVersion{6, 1}}
	first, err := c.Compile(p, tgt)
	if err != nil {
		t.Fatal(err)
	}
	first[0].K ^= 1 // the caller's copy
	// NET_RAW is not in the profile: same program. SYS_ADMIN is: another.
	again, _ := c.Compile(p, Target{Arch: "arm64", Caps: withCaps("NET_RAW"), Kernel: KernelVersion{6, 1}})
	admin, _ := c.Compile(p, Target{Arch: "arm64", Caps: withCaps("SYS_ADMIN"), Kernel: KernelVersion{6, 1}})
	direct, _ := p.CompileFor(tgt)
	if !slices.Equal(again, direct) {
		t.Error("cached program differs from a fresh compile")
	}
	if slices.Equal(admin, direct) {
		t.Error("SYS_ADMIN got the program without it")
	}
	if len(c.progs) != 2 {
		t.Errorf("cache holds %d programs, want 2", len(c.progs))
	}
	if _, err := c.Compile(p, Target{Arch: "sparc"}); err == nil {
		t.Error("bad arch compiled")
	}
}
