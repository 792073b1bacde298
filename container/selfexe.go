package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// The container's init is berth re-executed. So that no container can
// open the berth binary for writing through /proc/PID/exe (the
// CVE-2019-5736 class), berth executes itself through a read-only view:
// a detached, read-only bind mount of its own binary (open_tree +
// mount_setattr, Linux 5.12+), which costs a few system calls and no copy.
// Where the kernel lacks those calls, a sealed memfd copy is used instead.
// Either is made once per berth process and reused for every start.

var self struct {
	once sync.Once
	file *os.File
	err  error
}

// selfExe returns the path to execute berth through read-only, valid in
// this process and in its children until they exec.
func selfExe() (string, error) {
	self.once.Do(func() { self.file, self.err = sealSelf() })
	if self.err != nil {
		return "", self.err
	}
	return "/proc/self/fd/" + strconv.Itoa(int(self.file.Fd())), nil
}

func sealSelf() (*os.File, error) {
	f, err := sealSelfAnywhere()
	if err != nil {
		return nil, err
	}
	// Move the fd high: the child arranges its inherited fds in the low
	// numbers before execve, which must not overwrite the one it execs.
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, highFd)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("seal berth binary: %w", err)
	}
	return os.NewFile(uintptr(fd), "berth (read-only)"), nil
}

// highFd is the lowest fd number the sealed binary may take, above any fd
// a container init is handed.
const highFd = 100

func sealSelfAnywhere() (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc/self/exe", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err == nil {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
		if err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err == nil {
			return os.NewFile(uintptr(fd), "berth (read-only)"), nil
		}
		unix.Close(fd)
	}
	return sealedCopy()
}

// sealedCopy copies the binary into a memfd sealed against every change.
func sealedCopy() (*os.File, error) {
	// MFD_EXEC (Linux 6.3+) says it is meant to be executed, as the
	// kernel's vm.memfd_noexec asks; older kernels refuse the flag.
	fd, err := unix.MemfdCreate("berth", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate("berth", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("seal berth binary: %w", err)
	}
	f := os.NewFile(uintptr(fd), "berth (sealed)")
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("seal berth binary: %w", err)
	}
	defer src.Close()
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal berth binary: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal berth binary: %w", err)
	}
	return f, nil
}
