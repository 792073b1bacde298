//go:build amd64 || arm64 || riscv64

package hugeheap

import "unsafe"

// pmd is the size of the huge page asked for: one page-middle-directory
// entry with 4 KiB pages on amd64, arm64 and riscv64. A kernel with
// larger base pages has larger huge pages and the range below holds none:
// MADV_COLLAPSE then does nothing.
const pmd = 2 << 20

// page is the smallest page size: madvise wants a start aligned to the
// kernel's, and the Go linker starts the code at a multiple of it.
const page = 4 << 10

const (
	madvHugepage     = 14           // MADV_HUGEPAGE, linux/mman.h
	madvPopulateRead = 22           // MADV_POPULATE_READ
	madvCollapse     = 25           // MADV_COLLAPSE
	atFDCWD          = ^uintptr(99) // AT_FDCWD, -100
	oRDONLY          = 0
	oCLOEXEC         = 0o2000000
)

// What init did, for the tests: the heap object whose address names the
// heap's first 2 MiB (nil if init took nothing), the kernel's answer to
// the collapse (0 or -errno) and whether the text was mapped ahead.
var (
	first     *[16]byte
	collapsed uintptr
	populated bool
)

func init() {
	if !wanted() {
		return
	}
	first = new([16]byte)
	base := uintptr(unsafe.Pointer(first)) &^ (pmd - 1)
	collapsed = syscall3(sysMadvise, base, pmd, madvCollapse)
	// The heap grows upwards: the next 2 MiB, untouched yet, become a
	// huge page at their first fault.
	syscall3(sysMadvise, base+pmd, pmd, madvHugepage)
	populated = populateText()
}

// populateText maps berth's code and read-only data (the two read-only
// segments, 8.6 MiB on amd64) with one call rather than a fault per
// 64 KiB touched. The pages are shared with every other berth and the
// page cache: this costs page tables, not memory. A berth whose binary
// is not all in the page cache yet (its first run after boot, from a
// disk) reads the rest of it once.
func populateText() bool {
	start, end := textBounds()
	start &^= page - 1
	return end > start && syscall3(sysMadvise, start, end-start, madvPopulateRead) == 0
}

// wanted reports whether this process is a short-lived berth: not PID 1,
// not running the verb boot, and not the kernel's modprobe (isModprobe).
func wanted() bool {
	if syscall3(sysGetpid, 0, 0, 0) == 1 {
		return false
	}
	var buf [256]byte
	cmdline := ownCmdline(&buf)
	return cmdline != nil && !isBoot(cmdline) && !isModprobe(cmdline)
}

// ownCmdline reads the start of /proc/self/cmdline into buf; nil when it
// cannot.
func ownCmdline(buf *[256]byte) []byte {
	path := [...]byte{'/', 'p', 'r', 'o', 'c', '/', 's', 'e', 'l', 'f', '/', 'c', 'm', 'd', 'l', 'i', 'n', 'e', 0}
	fd := syscall3(sysOpenat, atFDCWD, uintptr(unsafe.Pointer(&path[0])), oRDONLY|oCLOEXEC)
	if int(fd) < 0 {
		return nil
	}
	n := syscall3(sysRead, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	syscall3(sysClose, fd, 0, 0)
	if int(n) <= 0 {
		return nil
	}
	return buf[:n]
}

// syscall3 makes a system call of up to three arguments and returns the
// kernel's answer unchanged: -errno on failure.
func syscall3(trap, a1, a2, a3 uintptr) uintptr

// textBounds returns where the linker put the start of the code and the
// end of the read-only data (runtime.text, runtime.epclntab).
func textBounds() (start, end uintptr)
