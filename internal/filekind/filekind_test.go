package filekind

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCheckReplace accepts a missing path and a regular file, and refuses
// everything else, naming the path and what it is.
func TestCheckReplace(t *testing.T) {
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	if err := os.WriteFile(at("file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(at("fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", at("sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Symlink("file", at("link")); err != nil {
		t.Fatal(err)
	}
	chr := "/dev/null"
	if err := unix.Mknod(at("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err == nil {
		chr = at("null") // as root: a device node of the test's own
	}
	for _, tc := range []struct{ path, want string }{
		{at("missing"), ""},
		{at("file"), ""},
		{dir, "is a directory"},
		{at("fifo"), "is a FIFO"},
		{at("sock"), "is a socket"},
		{at("link"), "is a symlink"},
		{chr, "is a character device"},
	} {
		err := CheckReplace(tc.path)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.path, err)
		case tc.want == "":
		case err == nil || !errors.Is(err, ErrNotRegular) ||
			!strings.Contains(err.Error(), tc.path+" "+tc.want+", not a regular file: refusing to replace it"):
			t.Errorf("%s: %v, want %q", tc.path, err, tc.want)
		}
	}
}
