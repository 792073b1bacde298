// Package seccomp compiles seccomp profiles to classic BPF and installs
// them, in pure Go: no libseccomp, no cgo.
//
// A Profile is Docker's JSON profile format (Load, Parse); Default is
// Docker's default profile. Compile turns a profile into a program for one
// GOARCH and one container's capabilities (CompileFor documents what the
// program does). Install
// loads a program into the kernel for every thread of the process. A
// container's init calls Install last, just before execve(2), on the
// thread that will call execve (the Go main goroutine, locked to the main
// thread), after setting no_new_privs: from then on every system call of
// the process is filtered, including the Go runtime's own.
//
// Syscall tables (name → number) come from golang.org/x/sys/unix and are
// generated into internal/sysnum by internal/gen. A binary links only the
// tables of its own GOARCH: amd64 carries x86_64, i386 and x32; arm64
// carries aarch64 and arm; arm carries arm; riscv64 carries riscv64.
// Compiling for another GOARCH fails (the package's tests link them all).
// Every binary links the names of all tables (not their numbers), to tell
// a name of another platform from one no platform has (UnknownSyscalls).
// CloneGuard is the filter berth stacks in an exec'd process against
// CLONE_PARENT.
package seccomp

//go:generate go run internal/gen/main.go
