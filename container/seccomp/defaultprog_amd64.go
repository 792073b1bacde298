package seccomp

import _ "embed"

// defaultProgram is the default profile's program for amd64 (defaultprog.go).
//
//go:embed defaultprog_amd64.bpf
var defaultProgram []byte
