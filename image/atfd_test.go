package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// chainAt makes n directories, each in the one before, under name in
// dirfd, with a file in the deepest.
func chainAt(t *testing.T, dirfd int, name string, n int) {
	t.Helper()
	fd, err := unix.Dup(dirfd)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		n := "d"
		if i == 0 {
			n = name
		}
		if err := unix.Mkdirat(fd, n, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := openDirAtNoFollow(fd, n)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	defer unix.Close(fd)
	f, err := unix.Openat(fd, "f", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(f)
}

// TestRemoveAllAtDepth removes a tree exactly removeDepth directories
// deep and refuses one a level deeper, naming it, instead of holding a
// directory fd and stack per level of a tree whoever writes there made.
func TestRemoveAllAtDepth(t *testing.T) {
	dir := t.TempDir()
	dirfd, err := openDirAtNoFollow(unix.AT_FDCWD, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	chainAt(t, dirfd, "edge", removeDepth)
	if err := removeAllAt(dirfd, "edge"); err != nil {
		t.Fatalf("%d levels: %v", removeDepth, err)
	}
	chainAt(t, dirfd, "past", removeDepth+1)
	err = removeAllAt(dirfd, "past")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("nested more than %d deep", removeDepth)) ||
		!strings.HasPrefix(err.Error(), "remove past/d/d/") {
		t.Fatalf("%d levels: error %.200v, want the depth refused, naming the path", removeDepth+1, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "edge")); !os.IsNotExist(err) {
		t.Errorf("edge tree still there: %v", err)
	}
}

// TestRemoveContentsBatches empties a directory of more names than one
// read takes.
func TestRemoveContentsBatches(t *testing.T) {
	dir := t.TempDir()
	n := 2*removeBatch + 7
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := openDirAtNoFollow(unix.AT_FDCWD, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := removeContentsAt(fd, dir); err != nil {
		t.Fatal(err)
	}
	if names, _ := readNamesAt(fd, -1); len(names) != 0 {
		t.Fatalf("%d of %d names left", len(names), n)
	}
}
