// Package regfile reads small files through O_PATH handles: a handle
// opened without reading anything (so a device or a FIFO is never opened
// for reading), checked to be a regular file, then read through the
// handle up to a limit. Callers open the handle as their paths require
// (RESOLVE_IN_ROOT inside an image, O_NOFOLLOW on the host). OpenLock
// opens a lock file the same careful way, for writing.
package regfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrNotRegular is returned for a handle on anything but a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is returned for a file of more than the limit's bytes.
var ErrTooLarge = errors.New("larger than the limit")

// Read reads the regular file that the O_PATH handle h names, at most
// limit bytes; a larger file gives ErrTooLarge (wrapped, with the limit)
// after limit+1 bytes were read.
func Read(h int, limit int64) ([]byte, error) {
	var st unix.Stat_t
	if err := unix.Fstat(h, &st); err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, ErrNotRegular
	}
	f, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(h), os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w of %d bytes", ErrTooLarge, limit)
	}
	return b, nil
}

// OpenLock opens the lock file at path read-write, creating it, as a
// regular file only: on a data partition written elsewhere, a symlink
// there would have berth create or open for writing any file of the host
// (it is not followed), a FIFO block (it is opened non-blocking), a
// device act (it is not opened). Anything but a regular file there is
// removed and the file created again, once.
func OpenLock(path string) (int, error) {
	for try := 0; ; try++ {
		fd, err := openRegularRW(path)
		if err == ErrNotRegular && try == 0 {
			if err := unix.Unlinkat(unix.AT_FDCWD, path, 0); err != nil && err != unix.ENOENT {
				return -1, &os.PathError{Op: "unlinkat", Path: path, Err: err}
			}
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// openRegularRW opens path read-write, creating it when missing, never
// through a symlink; anything but a regular file there gives
// ErrNotRegular, a device without being opened.
func openRegularRW(path string) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(unix.AT_FDCWD, path, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1, ErrNotRegular
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0o600)
	if err == unix.ELOOP {
		return -1, ErrNotRegular
	}
	if err != nil {
		return -1, err
	}
	if err = unix.Fstat(fd, &st); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		err = ErrNotRegular // swapped since the look
	}
	if err == nil {
		err = unix.SetNonblock(fd, false)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
