package image

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"berth/internal/testutil"
)

// checkRefused checks that err refuses path as kind and that path is
// still what it was (its type, and a symlink's target unchanged).
func checkRefused(t *testing.T, what, kind, path string, before fs.FileMode, err error) {
	t.Helper()
	want := path + " is " + kind + ", not a regular file: refusing to replace it"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s to %s: %v, want %q", what, kind, err, want)
	}
	st, lerr := os.Lstat(path)
	if lerr != nil || st.Mode().Type() != before.Type() {
		t.Errorf("%s to %s: %s is now %v (%v), was %v", what, kind, path, st.Mode(), lerr, before)
	}
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(path), "target")); kind == "a symlink" && string(b) != "kept" {
		t.Errorf("%s to %s: the symlink's target now holds %q", what, kind, b)
	}
}

// TestOutputNotRegular packs and signs to outputs that are not regular
// files: each is refused and left as it was (-o /dev/null once replaced
// the host's /dev/null with an image).
func TestOutputNotRegular(t *testing.T) {
	_, img := packTree(t)
	key, _, err := Keygen(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for kind, path := range testutil.NotRegular(t) {
		st, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		err = Pack(src, path, PackOptions{})
		checkRefused(t, "pack", kind, path, st.Mode(), err)
		_, err = Sign(img, key, path, "")
		checkRefused(t, "sign", kind, path, st.Mode(), err)
	}
}

// fifoOnWrite makes a FIFO at path when first written to.
type fifoOnWrite struct {
	t    *testing.T
	path string
	made bool
}

func (w *fifoOnWrite) Write(b []byte) (int, error) {
	if !w.made {
		w.made = true
		if err := unix.Mkfifo(w.path, 0o644); err != nil {
			w.t.Error(err)
		}
	}
	return len(b), nil
}

// TestPackOutputTurnsFIFO puts a FIFO at the output while Pack works (when
// it logs that it skips a socket): it is checked again before the rename,
// and not replaced.
func TestPackOutputTurnsFIFO(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(src, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out := filepath.Join(dir, "out.tar.zst")
	log := &fifoOnWrite{t: t, path: out}
	err = Pack(src, out, PackOptions{Log: log})
	if !log.made {
		t.Fatal("pack logged nothing: no FIFO made")
	}
	checkRefused(t, "pack", "a FIFO", out, fs.ModeNamedPipe, err)
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("left in %s: %v, want src and the FIFO only", dir, ents)
	}
}
