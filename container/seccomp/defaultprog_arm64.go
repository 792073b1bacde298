package seccomp

import _ "embed"

// defaultProgram is the default profile's program for arm64 (defaultprog.go).
//
//go:embed defaultprog_arm64.bpf
var defaultProgram []byte
