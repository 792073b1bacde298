package boot

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
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

// TestLockStatePlanted: STATE/.lock on a data partition written elsewhere
// may be anything; berth opened whatever was there but a symlink, for
// writing (a device would have taken the pid). A FIFO or a symlink is
// replaced by a regular file holding berth's pid, a directory refused,
// and the lock still excludes a second berth.
func TestLockStatePlanted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, lock, outside string)
	}{
		{"fifo", func(t *testing.T, lock, _ string) {
			if err := syscall.Mkfifo(lock, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink to a file", func(t *testing.T, lock, outside string) {
			if err := os.Symlink(outside, lock); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory", func(t *testing.T, lock, _ string) {
			if err := os.Mkdir(lock, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, outside := t.TempDir(), filepath.Join(t.TempDir(), "precious")
			if err := os.WriteFile(outside, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			lock := filepath.Join(dir, ".lock")
			tc.plant(t, lock, outside)
			release, err := lockState(dir)
			if tc.name == "directory" { // not removed: unlinkat without AT_REMOVEDIR
				if err == nil {
					release()
					t.Fatal("a directory at .lock: locked through it")
				}
				return
			}
			if err != nil {
				t.Fatalf("lockState: %v", err)
			}
			defer release()
			if st, err := os.Lstat(lock); err != nil || !st.Mode().IsRegular() {
				t.Fatalf(".lock: %v; want a regular file", describeMode(st, err)) // a FIFO's read would block
			}
			if b, _ := os.ReadFile(lock); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
				t.Errorf(".lock holds %q, want the pid", b)
			}
			if b, _ := os.ReadFile(outside); string(b) != "precious" {
				t.Errorf("the symlink's target was written: %q", b)
			}
			if _, err := lockState(dir); err == nil || !strings.Contains(err.Error(), "another berth") {
				t.Errorf("a second lock: %v", err)
			}
		})
	}
}

// describeMode is a file's mode, or why it has none.
func describeMode(st os.FileInfo, err error) string {
	if err != nil {
		return err.Error()
	}
	return st.Mode().String()
}
