//go:build arm64 || riscv64

package hugeheap

// System call numbers, include/uapi/asm-generic/unistd.h.
const (
	sysOpenat  = 56
	sysClose   = 57
	sysRead    = 63
	sysGetpid  = 172
	sysMadvise = 233
)
