package seccomp

import _ "embed"

// defaultProgram is the default profile's program for arm (defaultprog.go).
//
//go:embed defaultprog_arm.bpf
var defaultProgram []byte
