package seccomp

import _ "embed"

// defaultProgram is the default profile's program for riscv64 (defaultprog.go).
//
//go:embed defaultprog_riscv64.bpf
var defaultProgram []byte
