package hugeheap

// System call numbers, arch/x86/entry/syscalls/syscall_64.tbl.
const (
	sysRead    = 0
	sysClose   = 3
	sysMadvise = 28
	sysGetpid  = 39
	sysOpenat  = 257
)
