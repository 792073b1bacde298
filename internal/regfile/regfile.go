// Package regfile reads small files through O_PATH handles: a handle
// opened without reading anything (so a device or a FIFO is never opened
// for reading), checked to be a regular file, then read through the
// handle up to a limit. Callers open the handle as their paths require
// (RESOLVE_IN_ROOT inside an image, O_NOFOLLOW on the host).
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
