package seccomp

import (
	"testing"
)

// BenchmarkCompileDefault measures what a container start pays without a
// cached filter: compiling Docker's profile for containerd's capabilities.
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

// BenchmarkDefault measures parsing the embedded profile.
func BenchmarkDefault(b *testing.B) {
	for b.Loop() {
		Default()
	}
}
