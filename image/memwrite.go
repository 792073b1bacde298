package image

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// A regular file bound for a filesystem in memory (tmpfs, ramfs) is
// created and written with raw syscalls, which keep the goroutine's P.
// The runtime's monitor takes the P of an ordinary syscall that lasts
// more than 20 µs — a write of more than about 64 KiB to tmpfs — and
// hands it to a spinning thread that finds nothing to do; the writer then
// has to take a P back, and the monitor, which wakes every 20 µs while it
// keeps finding such syscalls, never backs off. On two cores, with both
// of the crew's goroutines busy, that costs more CPU than the copies
// (minbase into tmpfs: about 10% of the unpack's CPU, README). These
// calls wait for no device: on tmpfs they are copies into the page cache
// and a new inode, which stall only under memory pressure, as any page
// fault of Go code can. Files on other filesystems, whose calls may wait
// for a disk, writeback or a server, get ordinary syscalls, and so do the
// short calls that follow (times, close), which the monitor leaves be.

// inMemory reports whether the directory fd lies on tmpfs or ramfs.
func inMemory(fd int) bool {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return false
	}
	magic := uint32(st.Type) // int32 on 32-bit platforms
	return magic == unix.TMPFS_MAGIC || magic == unix.RAMFS_MAGIC
}

// fileCalls makes the syscalls that create a regular file: raw ones when
// it is true, the file's directory being in memory.
type fileCalls bool

// create opens name under dirfd with O_CREAT|O_EXCL and the other flags,
// never following a symlink.
func (raw fileCalls) create(dirfd int, name string, mode uint32) (int, error) {
	const flags = unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if !raw {
		return unix.Openat(dirfd, name, flags, mode)
	}
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	fd, _, errno := unix.RawSyscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), flags, uintptr(mode), 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// write writes p to fd once and returns what write(2) returns.
func (raw fileCalls) write(fd int, p []byte) (int, error) {
	if !raw {
		return unix.Write(fd, p)
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
