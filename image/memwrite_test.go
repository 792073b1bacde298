package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDirsInMemory checks which directories get raw writes: those on a
// tmpfs, whether the root is one, a directory the unpack made inside one,
// or a tmpfs mounted below a root on disk — and not those on disk.
func TestDirsInMemory(t *testing.T) {
	disk := t.TempDir()
	if inMemory(openPath(t, disk)) {
		t.Skip(disk, "is on a tmpfs already")
	}
	mnt := filepath.Join(disk, "mnt")
	mkdir(t, mnt)
	mountTmpfs(t, mnt)
	mkdir(t, filepath.Join(disk, "plain"))
	cases := []struct {
		root, rel string
		mem       bool
	}{
		{disk, ".", false},
		{disk, "plain", false},
		{disk, "made/by/unpack", false},
		{disk, "mnt", true},
		{disk, "mnt/made", true},
		{mnt, ".", true},
		{mnt, "made/deeper", true},
	}
	for _, c := range cases {
		t.Run(strings.TrimPrefix(c.root, disk)+"/"+c.rel, func(t *testing.T) {
			r, err := openRoot(c.root)
			if err != nil {
				t.Fatal(err)
			}
			defer r.close()
			d, err := r.dir(c.rel, true)
			if err != nil {
				t.Fatal(err)
			}
			if d.mem != c.mem {
				t.Errorf("in memory: %v, want %v", d.mem, c.mem)
			}
		})
	}
}

// openPath opens dir as an O_PATH fd until the test ends.
func openPath(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestFullTmpfs unpacks into a 4 MiB tmpfs, with a byte limit above its
// size, a file that fills it and then one more: the raw writes report
// ENOSPC for the second, naming it, whether it is written in a batch or
// frame by frame.
func TestFullTmpfs(t *testing.T) {
	mnt := t.TempDir()
	if !isRoot {
		t.Skip("mounting a tmpfs needs root")
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	for _, size := range []int{1000, 64 << 10} { // with 700-byte frames: 2 frames, in a batch; many, frame by frame
		arc := filepath.Join(t.TempDir(), "full.tar")
		writeTar(t, arc, []entry{{name: "a", typ: regT, data: strings.Repeat("a", 4<<20)}, {name: "b", typ: regT, data: strings.Repeat("b", size)}})
		for mode, m := range unpackModes {
			t.Run(m.name+"/"+itoa(size), func(t *testing.T) {
				dest := filepath.Join(mnt, "dest")
				defer os.RemoveAll(dest)
				_, err := unpackMode(t, arc, dest, mode, UnpackOptions{Limits: Limits{MaxBytes: 64 << 20}})
				if err == nil || !strings.Contains(err.Error(), `entry "b"`) || !strings.Contains(err.Error(), "no space left on device") {
					t.Fatalf("error %v: want ENOSPC on entry b", err)
				}
				if _, err := os.Stat(dest); !os.IsNotExist(err) {
					t.Errorf("after the failed unpack: %v, want %s missing", err, dest)
				}
			})
		}
	}
}
