//go:build !amd64 && !arm64 && !arm && !riscv64

package seccomp

// defaultProgram is empty where berth embeds none: filters are compiled.
var defaultProgram []byte
