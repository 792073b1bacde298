package mmapfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/testutil"
)

// TestMapNotRegular maps things that are not regular files: each is
// refused at once, naming what it is; a FIFO is not waited on for a
// writer (Map once blocked in open, forever).
func TestMapNotRegular(t *testing.T) {
	nodes := testutil.NotRegular(t)
	dir := filepath.Dir(nodes["a FIFO"])
	at := func(name string) string { return filepath.Join(dir, name) }
	// Map follows a symlink, as before: to a FIFO, it is refused as one.
	if err := os.Symlink("fifo", at("fifolink")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{at("fifo"), "not a regular file (a FIFO)"},
		{at("fifolink"), "not a regular file (a FIFO)"},
		{at("sock"), "not a regular file (a socket)"},
		{at("dir"), "not a regular file (a directory)"},
		{"/dev/null", "not a regular file (a character device)"},
		{at("missing"), "no such file"},
	} {
		done := make(chan error, 1)
		go func() {
			m, err := Map(tc.path)
			if err == nil {
				m.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "map "+tc.path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("map %s: %v, want %q", tc.path, err, tc.want)
			}
			if strings.Contains(tc.want, "no such") && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("map %s: %v is not fs.ErrNotExist", tc.path, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("map %s: still blocked after 5s", tc.path)
			// A writer lets the blocked open return.
			if fd, err := unix.Open(tc.path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
				defer unix.Close(fd)
			}
			<-done
		}
	}
}
