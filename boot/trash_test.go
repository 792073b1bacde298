package boot

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// deepTree makes a chain of depth directories under dir, made relative
// to each other (no path is longer than a name), with a file in each.
func deepTree(t *testing.T, dir string, depth int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range depth {
		if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := unix.Openat(fd, "f", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(f)
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	unix.Close(fd)
}

// withFdLimit runs f with the process's soft limit of open files at n,
// restoring it after. prlimit, not setrlimit: Go keeps the limit its
// children get.
func withFdLimit(t *testing.T, n uint64, f func()) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatal(err)
	}
	low := old
	low.Cur = n
	if err := unix.Prlimit(0, unix.RLIMIT_NOFILE, &low, nil); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := unix.Prlimit(0, unix.RLIMIT_NOFILE, &old, nil); err != nil {
			t.Fatal(err)
		}
	}()
	f()
}

// TestTrashDeepTree: a workload's tree 3000 directories deep is removed
// with 64 fds allowed to berth, where a removal that holds a directory
// open per level (os.RemoveAll) runs out of them.
func TestTrashDeepTree(t *testing.T) {
	state := t.TempDir()
	tr, err := newTrash(state, NewLogger(io.Discard), func(func()) {})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(state, "containers", "app")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	deepTree(t, dir, 3000)
	if err := releaseRootfs(dir, tr); err != nil {
		t.Fatal(err)
	}
	withFdLimit(t, 64, func() { tr.empty(nil) })
	if ents, _ := os.ReadDir(tr.dir); len(ents) != 0 {
		t.Errorf("the trash after its emptying: %d entries left", len(ents))
	}
}

// TestTrashStops: a removal stops between two entries once berth shuts
// down (close), leaving the rest for the next boot, whose trash removes
// it; an entry that cannot be removed (an immutable file in it) is tried
// trashAttempts times, logged and left, and holds nothing else up.
func TestTrashStops(t *testing.T) {
	state := t.TempDir()
	console := &lockedBuffer{}
	tr, err := newTrash(state, NewLogger(console), func(func()) {})
	if err != nil {
		t.Fatal(err)
	}
	dir := containerTree(t, state, "app", t.TempDir())
	if err := releaseRootfs(dir, tr); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	close(stopped)
	tr.empty(stopped)
	if ents, _ := os.ReadDir(tr.dir); len(ents) != 1 {
		t.Fatalf("after a removal stopped at once: %d entries in the trash, want app's tree", len(ents))
	}
	// The next boot's trash, with a real goroutine, removes it; close
	// waits for that goroutine.
	next, err := newTrash(state, NewLogger(console), func(f func()) { go f() })
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ents, _ := os.ReadDir(tr.dir); len(ents) == 0 {
			break
		}
		if time.Now().After(deadline) { // a hang guard
			t.Fatal("the next boot's trash did not remove the leftover")
		}
	}
	next.close()
	select {
	case <-next.exited:
	default:
		t.Error("close returned before the trash's goroutine ended")
	}

	// An immutable file, with a file and a directory beside it.
	dir = containerTree(t, state, "locked", t.TempDir())
	c := filepath.Join(dir, "upper/var/lib/db/a/b/c")
	if err := os.MkdirAll(filepath.Join(c, "sibdir", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c, "sibling"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(c, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetInt(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Skipf("no file flags here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, flags|fsImmutableFL); err != nil {
		t.Skipf("no immutable flag here: %v", err)
	}
	defer unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, flags)
	other := containerTree(t, state, "other", t.TempDir())
	for _, d := range []string{dir, other} {
		if err := releaseRootfs(d, tr); err != nil {
			t.Fatal(err)
		}
	}
	tr.empty(nil)
	tr.empty(nil) // a second emptying logs the entry left no more
	var left []string
	filepath.WalkDir(tr.dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil && p != tr.dir {
			left = append(left, filepath.Base(p))
		}
		return nil
	})
	for _, name := range left {
		if strings.HasPrefix(name, "other.") || name == "sibling" || name == "sibdir" || name == "x" {
			t.Errorf("left in the trash beside the immutable file: %s (all: %v)", name, left)
		}
	}
	if !slices.Contains(left, "data") {
		t.Errorf("the immutable file is not left: %v", left)
	}
	tr.log.Flush(5 * time.Second)
	if n := strings.Count(console.String(), "left for the next boot"); n != 1 {
		t.Errorf("the entry left is logged %d times, want once:\n%s", n, console.String())
	}
}

// fsImmutableFL is FS_IMMUTABLE_FL (linux/fs.h), which x/sys/unix lacks.
const fsImmutableFL = 0x10

// TestTrashEntersNoMount: a tree in the trash with a mount in it (one
// a stuck container left) is not entered: what the mount holds stays,
// and the rest of the tree is removed.
func TestTrashEntersNoMount(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounts a tmpfs")
	}
	state := t.TempDir()
	console := &lockedBuffer{}
	tr, err := newTrash(state, NewLogger(console), func(func()) {})
	if err != nil {
		t.Fatal(err)
	}
	dir := containerTree(t, state, "app", t.TempDir())
	m := filepath.Join(dir, "upper", "mnt")
	if err := os.Mkdir(m, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", m, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m, "kept"), []byte("mounted"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := releaseRootfs(dir, tr); err != nil {
		t.Fatal(err)
	}
	tr.empty(nil)
	var kept string
	var left []string
	filepath.WalkDir(tr.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "kept" {
			kept = p
		}
		if err == nil && p != tr.dir {
			left = append(left, d.Name())
		}
		return nil
	})
	if kept == "" {
		t.Fatalf("the mount's file was removed; left: %v", left)
	}
	defer unix.Unmount(filepath.Dir(kept), unix.MNT_DETACH)
	if slices.Contains(left, "data") || slices.Contains(left, "work") {
		t.Errorf("the tree beside the mount was not removed: %v", left)
	}
}

// TestReleaseInPlaceDeepTree: where the trash cannot take a container's
// tree — there is none, or the tree is on another file system — it is
// removed in place with the trash's bounds: a tree 5000 directories deep
// goes with 64 fds allowed, where os.RemoveAll, holding one a level, ran
// out of them (and, as PID 1, out of PID 1's 4,096).
func TestReleaseInPlaceDeepTree(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounts a tmpfs")
	}
	for _, other := range []bool{false, true} {
		state := t.TempDir()
		containers := filepath.Join(state, "containers")
		if err := os.Mkdir(containers, 0o700); err != nil {
			t.Fatal(err)
		}
		var tr *trash
		if other {
			if err := unix.Mount("tmpfs", containers, "tmpfs", 0, "size=64m"); err != nil {
				t.Fatal(err)
			}
			defer unix.Unmount(containers, unix.MNT_DETACH)
			var err error
			if tr, err = newTrash(state, NewLogger(io.Discard), func(func()) {}); err != nil {
				t.Fatal(err)
			}
		}
		dir := filepath.Join(containers, "app")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		deepTree(t, dir, 5000)
		var err error
		withFdLimit(t, 64, func() { err = releaseRootfs(dir, tr) })
		if err != nil {
			t.Fatalf("another file system %v: %v", other, err)
		}
		if ents, err := os.ReadDir(containers); err != nil || len(ents) != 0 {
			t.Errorf("another file system %v: STATE/containers holds %d entries (%v)", other, len(ents), err)
		}
	}
}

// fillInodes makes directories, each with files, under dir until the file
// system has no inode left.
func fillInodes(t *testing.T, dir string) {
	t.Helper()
	for i := 0; ; i++ {
		d := filepath.Join(dir, "d"+strconv.Itoa(i))
		if err := os.Mkdir(d, 0o755); err != nil {
			if errors.Is(err, unix.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
		for j := 0; j < 4; j++ {
			f, err := os.Create(filepath.Join(d, "f"+strconv.Itoa(j)))
			if errors.Is(err, unix.ENOSPC) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
}

// TestReleaseNoInodeLeft: a workload that used up its file system's
// inodes is released all the same, through the trash (which cannot make
// its staging directory: subdirectories move into the trash itself) and
// in place (which makes nothing).
func TestReleaseNoInodeLeft(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounts a tmpfs")
	}
	for _, withTrash := range []bool{true, false} {
		state := t.TempDir()
		if err := unix.Mount("tmpfs", state, "tmpfs", 0, "size=16m,nr_inodes=300"); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(state, unix.MNT_DETACH)
		var tr *trash
		if withTrash {
			var err error
			if tr, err = newTrash(state, NewLogger(io.Discard), func(func()) {}); err != nil {
				t.Fatal(err)
			}
		}
		dir := filepath.Join(state, "containers", "app")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		fillInodes(t, dir)
		if err := releaseRootfs(dir, tr); err != nil {
			t.Fatalf("trash %v: %v", withTrash, err)
		}
		if withTrash {
			tr.empty(nil)
			if ents, _ := os.ReadDir(tr.dir); len(ents) != 0 {
				t.Errorf("the trash after its emptying: %d entries left", len(ents))
			}
		}
		if ents, err := os.ReadDir(filepath.Join(state, "containers")); err != nil || len(ents) != 0 {
			t.Errorf("trash %v: STATE/containers holds %d entries (%v)", withTrash, len(ents), err)
		}
	}
}

// TestReleaseInPlaceTreeItself: released in place, a symlink or a file
// planted where a container's directory is expected is unlinked, its
// target untouched; a mount point there is neither emptied nor removed.
func TestReleaseInPlaceTreeItself(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounts a tmpfs")
	}
	state, target := t.TempDir(), t.TempDir()
	containers := filepath.Join(state, "containers")
	if err := os.Mkdir(containers, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(p string) {
		if err := os.WriteFile(p, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(target, "precious"))
	if err := os.Symlink(target, filepath.Join(containers, "link")); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(containers, "file"))
	for _, name := range []string{"link", "file"} {
		if err := releaseRootfs(filepath.Join(containers, name), nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := os.Lstat(filepath.Join(containers, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(target, "precious")); err != nil {
		t.Errorf("the symlink's target lost its file: %v", err)
	}
	mnt := filepath.Join(containers, "mounted")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	write(filepath.Join(mnt, "precious"))
	if err := removeInPlace(mnt, nil); err == nil {
		t.Error("a mount point released in place: no error")
	}
	if _, err := os.Stat(filepath.Join(mnt, "precious")); err != nil {
		t.Errorf("the mount's file: %v", err)
	}
}
