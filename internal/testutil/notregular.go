package testutil

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// NotRegular makes, in a new directory, one of each thing that is not a
// regular file a path may name, by the kind berth's errors give
// (filekind.Of): "a FIFO", "a socket", "a symlink" (to target, a regular
// file beside it holding "kept"), "a directory", "a character device" (a
// node of the test's own as root, else /dev/null, which must not be
// touched).
func NotRegular(t testing.TB) map[string]string {
	t.Helper()
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(at("target"), []byte("kept"), 0o644))
	must(unix.Mkfifo(at("fifo"), 0o644))
	l, err := net.Listen("unix", at("sock"))
	must(err)
	t.Cleanup(func() { l.Close() })
	must(os.Symlink("target", at("link")))
	must(os.Mkdir(at("dir"), 0o755))
	nodes := map[string]string{"a FIFO": at("fifo"), "a socket": at("sock"), "a symlink": at("link"),
		"a directory": at("dir"), "a character device": "/dev/null"}
	if unix.Mknod(at("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))) == nil {
		nodes["a character device"] = at("null")
	}
	return nodes
}
