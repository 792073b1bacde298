package boot

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// containerTree makes STATE/containers/NAME as a container leaves it: a
// writable layer with a nested tree, a directory without permissions (as
// overlayfs's work/work), and a symlink its workload pointed at a host
// directory.
func containerTree(t *testing.T, state, name, hostDir string) string {
	t.Helper()
	dir := filepath.Join(state, "containers", name)
	for _, d := range []string{"upper/var/lib/db/a/b/c", "work/work"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "upper/var/lib/db/a/b/c/data"), []byte("rows"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "work/work"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(hostDir, filepath.Join(dir, "upper/host")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestTrashRemovesOffTheCaller: releasing a container's tree moves it
// into STATE/trash at once and removes nothing on the caller's goroutine;
// the trash's own goroutine removes it, with what an earlier boot left
// there, and follows no symlink out of it.
func TestTrashRemovesOffTheCaller(t *testing.T) {
	state := t.TempDir()
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "keep"), []byte("host file"), 0o644); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(state, trashSubdir, "old.1")
	if err := os.MkdirAll(filepath.Join(left, "upper"), 0o755); err != nil {
		t.Fatal(err)
	}
	var run func()
	tr, err := newTrash(state, NewLogger(io.Discard), func(f func()) { run = f })
	if err != nil {
		t.Fatal(err)
	}
	defer tr.close()
	dir := containerTree(t, state, "app", host)
	if err := releaseRootfs(dir, tr); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after the release %s is still there: %v", dir, err)
	}
	// The trash's goroutine has not run: the tree waits in the trash.
	ents, _ := os.ReadDir(filepath.Join(state, trashSubdir))
	if len(ents) != 2 {
		t.Fatalf("trash before its goroutine ran: %d entries, want the leftover and app's tree", len(ents))
	}
	fi, err := os.Stat(filepath.Join(state, trashSubdir))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("trash mode: %v %v, want 0700", fi.Mode(), err)
	}
	go run()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ents, _ = os.ReadDir(filepath.Join(state, trashSubdir))
		if len(ents) == 0 {
			break
		}
		if time.Now().After(deadline) { // a hang guard
			t.Fatalf("the trash was not emptied: %d entries left", len(ents))
		}
	}
	if data, err := os.ReadFile(filepath.Join(host, "keep")); err != nil || string(data) != "host file" {
		t.Errorf("the host directory a symlink in the tree named: %q %v", data, err)
	}
	// A release after the close still moves the tree aside; the next
	// boot's trash removes it.
	tr.close()
	dir = containerTree(t, state, "app", host)
	if err := releaseRootfs(dir, tr); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after a release past the close %s is still there: %v", dir, err)
	}
}

// TestTrashOtherFileSystem: a container directory on another file
// system than the trash (a rename cannot move it) is removed in place.
func TestTrashOtherFileSystem(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounts a tmpfs")
	}
	state := t.TempDir()
	containers := filepath.Join(state, "containers")
	if err := os.Mkdir(containers, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", containers, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(containers, unix.MNT_DETACH)
	tr, err := newTrash(state, NewLogger(io.Discard), func(func()) {})
	if err != nil {
		t.Fatal(err)
	}
	dir := containerTree(t, state, "app", t.TempDir())
	if err := releaseRootfs(dir, tr); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there: %v", dir, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(state, trashSubdir)); len(ents) != 0 {
		t.Errorf("the trash took %d entries across file systems", len(ents))
	}
}
