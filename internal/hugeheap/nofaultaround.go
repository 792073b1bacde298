//go:build amd64 && nofaultaround

package hugeheap

import "unsafe"

// An experiment, built only with -tags nofaultaround and never shipped:
// PID 1 (and berth boot) registers its code and read-only data with a
// userfaultfd in asynchronous write-protect mode (UFFD_FEATURE_WP_ASYNC,
// Linux 6.7). Nothing is ever write-protected and no thread reads the
// descriptor; the registration only makes the kernel map one page per
// fault on those mappings instead of the 64 KiB around it
// (uffd_disable_fault_around), so PID 1's RSS counts only the pages of
// its binary it has touched. bench/README.md (issue 11 blocked, stop 57)
// gives what that leaves; a kernel without the feature refuses the
// ioctl and nothing changes.

// userfaultfd(2) and its ioctls, include/uapi/linux/userfaultfd.h.
const (
	sysUserfaultfd     = 323
	sysIoctl           = 16
	uffdAPI            = 0xAA
	uffdFeatureWPAsync = 1 << 15
	uffdioAPI          = 0xc018aa3f // _IOWR(0xAA, 0x3F, struct uffdio_api)
	uffdioRegister     = 0xc020aa00 // _IOWR(0xAA, 0x00, struct uffdio_register)
	uffdRegisterWP     = 1 << 1
	uffdUserModeOnly   = 1
)

// init registers the code of PID 1 and berth boot, reading the command
// line once; bench/mem's figures show whether it took.
func init() {
	var buf [256]byte
	cmdline := ownCmdline(&buf)
	if syscall3(sysGetpid, 0, 0, 0) == 1 || cmdline != nil && isBoot(cmdline) {
		registerText()
	}
}

// registerText registers [code start, read-only data end) for
// asynchronous write protection and returns 0, or the -errno of the
// step that failed. The descriptor stays open for the process's life.
func registerText() uintptr {
	fd := syscall3(sysUserfaultfd, oCLOEXEC|uffdUserModeOnly, 0, 0)
	if int(fd) < 0 {
		return fd
	}
	start, end := textBounds()
	if r := registerWPAsync(fd, start, end); r != 0 {
		syscall3(sysClose, fd, 0, 0)
		return r
	}
	return 0
}

// registerWPAsync enables asynchronous write protection on the
// userfaultfd fd and registers the pages holding [start, end) with it.
func registerWPAsync(fd, start, end uintptr) uintptr {
	api := [3]uint64{uffdAPI, uffdFeatureWPAsync, 0}
	if r := syscall3(sysIoctl, fd, uffdioAPI, uintptr(unsafe.Pointer(&api))); r != 0 {
		return r
	}
	start &^= page - 1
	end = (end + page - 1) &^ (page - 1)
	reg := [4]uint64{uint64(start), uint64(end - start), uffdRegisterWP, 0}
	return syscall3(sysIoctl, fd, uffdioRegister, uintptr(unsafe.Pointer(&reg)))
}
