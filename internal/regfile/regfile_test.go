package regfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRead reads a regular file at its limit, refuses one past it, and
// refuses a FIFO, a directory and a device without reading or blocking.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	file, fifo := filepath.Join(dir, "f"), filepath.Join(dir, "fifo")
	if err := os.WriteFile(file, []byte("abcd"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path  string
		limit int64
		want  string
		err   error
	}{
		{file, 4, "abcd", nil},
		{file, 3, "", ErrTooLarge},
		{fifo, 4, "", ErrNotRegular},
		{dir, 4, "", ErrNotRegular},
		{"/dev/zero", 4, "", ErrNotRegular},
	} {
		h, err := unix.Open(tc.path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Read(h, tc.limit)
		unix.Close(h)
		if string(b) != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%s, limit %d: %q, %v; want %q, %v", tc.path, tc.limit, b, err, tc.want, tc.err)
		}
	}
}
