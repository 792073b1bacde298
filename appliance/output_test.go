package appliance_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"berth/appliance"
)

// TestWriteOutputNotRegular writes an initramfs over things that are not
// regular files: each is refused and left as it was (-o /dev/null once
// replaced the host's /dev/null). A regular file is replaced.
func TestWriteOutputNotRegular(t *testing.T) {
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	if err := os.WriteFile(at("old"), []byte("old"), 0o644); err != nil {
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
	if err := os.Symlink("old", at("link")); err != nil {
		t.Fatal(err)
	}
	chr := "/dev/null"
	if unix.Mknod(at("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) == nil {
		chr = at("null")
	}
	for _, tc := range []struct{ path, kind string }{
		{at("fifo"), "a FIFO"},
		{at("sock"), "a socket"},
		{at("link"), "a symlink"},
		{dir, "a directory"},
		{chr, "a character device"},
		{at("old"), ""},
		{at("new"), ""},
	} {
		before, _ := os.Lstat(tc.path)
		err := appliance.NewInitramfs().Write(tc.path)
		after, lerr := os.Lstat(tc.path)
		switch {
		case tc.kind == "" && (err != nil || lerr != nil || !after.Mode().IsRegular() || after.Size() < 4):
			t.Errorf("write %s: %v, then %v (%v)", tc.path, err, after, lerr)
		case tc.kind == "":
		case err == nil || !strings.Contains(err.Error(), tc.path+" is "+tc.kind+", not a regular file: refusing to replace it"):
			t.Errorf("write %s: %v, want it refused as %s", tc.path, err, tc.kind)
		case lerr != nil || after.Mode().Type() != before.Mode().Type():
			t.Errorf("write %s: it is now %v (%v), was %v", tc.path, after.Mode(), lerr, before.Mode())
		}
	}
	if target, err := os.Readlink(at("link")); target != "old" {
		t.Errorf("the symlink now points to %q (%v)", target, err)
	}
}
