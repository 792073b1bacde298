package container

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// Control files (cgroup, /proc, /sys) are small and never block, so they
// are read and written with plain system calls rather than through an
// os.File, which would register each one with the runtime's poller: four
// more system calls a file (two fcntl, two epoll_ctl), and a v1
// container start writes a dozen.

// ctlFileMax bounds readCtlFile: a control file of this size or more is
// refused. Those berth reads with it (cpuset lists, controller lists) are
// a line each; a cgroup.procs, which can be long, is read with os.ReadFile.
const ctlFileMax = 64 << 10

// writeFile writes value to a control file in one write, naming the file
// and the value in the error.
func writeFile(path, value string) error {
	return writeEach(path, value)
}

// writeEach writes each value to a control file with a write of its own
// through one open file (a v1 devices.allow takes one rule a write),
// naming the file and the value that failed in the error.
func writeEach(path string, values ...string) error {
	fd, err := openCtl(path, unix.O_WRONLY|unix.O_TRUNC)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	for _, v := range values {
		if err := writeAll(fd, v); err != nil {
			unix.Close(fd)
			return fmt.Errorf("write %q to %s: %w", v, path, err)
		}
	}
	if err := unix.Close(fd); err != nil {
		return &fs.PathError{Op: "close", Path: path, Err: err}
	}
	return nil
}

// readCtlFile reads a whole control file shorter than ctlFileMax.
func readCtlFile(path string) ([]byte, error) {
	fd, err := openCtl(path, unix.O_RDONLY)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 512)
	for len(buf) < ctlFileMax {
		buf = slices.Grow(buf, 512)
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
	return nil, &fs.PathError{Op: "read", Path: path, Err: errors.New("larger than 64 KiB")}
}

func openCtl(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func writeAll(fd int, value string) error {
	b := []byte(value)
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b = b[n:]
	}
	return nil
}

// openCtlFile opens a control file (a cgroup.procs or tasks, /dev/null) as an
// os.File that is not in the runtime's poller: the fd goes to a child, or
// takes one write.
func openCtlFile(path string, flags int) (*os.File, error) {
	fd, err := openCtl(path, flags)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}
