package boot

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSocketPathNotReplaced: a --socket path that names something else
// than a socket (a mistyped config file, a FIFO, a directory, a symlink)
// is refused and left as it was; a socket a killed berth left is
// replaced, and one a berth answers on refused.
func TestSocketPathNotReplaced(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "berth.toml")
	if err := os.WriteFile(file, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for path, kind := range map[string]string{file: "a regular file", fifo: "a FIFO", sub: "a directory", link: "a symlink"} {
		want := kind + " is there, not a socket"
		if err := checkSocketFree(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkSocketFree(%s): %v, want %q", path, err, want)
		}
		b := &booter{log: NewLogger(io.Discard)}
		if err := b.serveControl(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("serveControl(%s): %v, want %q", path, err, want)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	if data, _ := os.ReadFile(file); string(data) != "precious" {
		t.Errorf("the file now holds %q", data)
	}
	// A socket nobody answers on, as a killed berth leaves it.
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	if err := checkSocketFree(stale); err == nil || !strings.Contains(err.Error(), "another berth is already serving") {
		t.Errorf("a socket answered on: %v", err)
	}
	l.Close()
	if err := checkSocketFree(stale); err != nil {
		t.Errorf("a stale socket: %v", err)
	}
	b := &booter{log: NewLogger(io.Discard)}
	if err := b.serveControl(stale); err != nil {
		t.Errorf("serveControl on a stale socket: %v", err)
	}
	b.control.Close()
}
