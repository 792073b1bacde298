// Package filekind names what a file that is not a regular one is, for
// berth's errors, and checks the path a finished output file is to be
// renamed over: berth writes an output (an image, a signature, an
// initramfs) to a temporary file beside it and renames that over it,
// which would replace a device, a FIFO or a socket there (-o /dev/null)
// with a regular file.
package filekind

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrNotRegular is wrapped by CheckReplace's refusal.
var ErrNotRegular = errors.New("not a regular file")

// Of names the type in m: "a FIFO", "a character device" and so on.
func Of(m fs.FileMode) string {
	switch t := m.Type(); {
	case t == 0:
		return "a regular file"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symlink"
	case t&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeDevice != 0:
		return "a block device"
	default:
		return "a file of type " + t.String()
	}
}

// CheckReplace returns nil when nothing is at path or a regular file is,
// and otherwise an error naming path and what is there. A symlink at path
// is refused too, not followed: the rename would replace the link, not
// the file it points to.
func CheckReplace(path string) error {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case st.Mode().IsRegular():
		return nil
	}
	return fmt.Errorf("%s is %s, %w: refusing to replace it", path, Of(st.Mode()), ErrNotRegular)
}
