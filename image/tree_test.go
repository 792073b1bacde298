package image

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// isRoot is true when the tests may chown and mknod.
var isRoot = os.Geteuid() == 0

// node is what the tests compare of one file.
type node struct {
	typ      uint32
	perm     uint32 // mode & 07777, not for symlinks
	uid, gid uint32
	mtime    int64 // nanoseconds
	size     int64
	holes    bool // fewer blocks allocated than the size needs: a sparse file
	sum      [32]byte
	target   string // symlink target
	rdev     uint64
	links    string // the other names of a hardlinked file, sorted
}

// snapshot describes every path under dir, keyed by relative path.
func snapshot(t *testing.T, dir string) map[string]node {
	t.Helper()
	out := map[string]node{}
	inodes := map[uint64][]string{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := node{typ: st.Mode & unix.S_IFMT, perm: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid, mtime: st.Mtim.Nano()}
		switch n.typ {
		case unix.S_IFREG:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			n.size, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			copy(n.sum[:], h.Sum(nil))
			n.holes = st.Blocks*512 < st.Size
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		case unix.S_IFLNK:
			n.perm = 0
			n.target, _ = os.Readlink(p)
		case unix.S_IFCHR, unix.S_IFBLK:
			n.rdev = uint64(st.Rdev)
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, names := range inodes {
		slices.Sort(names)
		for _, name := range names {
			n := out[name]
			n.links = strings.Join(names, ",")
			out[name] = n
		}
	}
	return out
}

// compareTrees fails the test where got differs from want.
func compareTrees(t *testing.T, want, got map[string]node) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: missing", p)
			continue
		}
		if g != w {
			t.Errorf("%s: got %+v\nwant %+v", p, brief(g), brief(w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected", p)
		}
	}
}

func brief(n node) string {
	return fmt.Sprintf("type=%#o perm=%#o owner=%d:%d mtime=%d size=%d holes=%v target=%q rdev=%d links=%q sum=%x",
		n.typ, n.perm, n.uid, n.gid, n.mtime, n.size, n.holes, n.target, n.rdev, n.links, n.sum[:4])
}

// makeTree builds a tree with every kind of file berth packs, plus a socket
// (which it skips). It returns the tree's path.
func makeTree(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "tree")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(rel string, perm os.FileMode, data []byte) {
		t.Helper()
		p := filepath.Join(root, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, data, 0o600))
		must(os.Chmod(p, perm))
	}
	must(os.MkdirAll(root, 0o755))
	// Spans several 64 KiB frames, and does not compress, so the image is
	// big enough to be mapped (mmapfs reads a file of 64 KiB or less).
	big := make([]byte, 300<<10+17)
	rand.NewChaCha8([32]byte{1}).Read(big)
	file("etc/hostname", 0o644, []byte("berth\n"))
	file("etc/empty", 0o600, nil)
	file("bin/su", 0o4755|os.ModeSetuid, []byte("#!/bin/sh\n"))
	file("bin/wall", 0o2755|os.ModeSetgid, []byte("wall"))
	file("usr/lib/big.bin", 0o444, big)
	file("usr/lib/data/hard1", 0o640, []byte("linked"))
	file(strings.Repeat("long-directory-name/", 8)+strings.Repeat("x", 120), 0o644, []byte("long"))
	file("ünïcödé/файл", 0o644, []byte("utf8"))
	file("ro/inside", 0o644, []byte("under a read-only dir"))
	sparse := func(rel string, size int64, data map[int64]string) {
		t.Helper()
		f, err := os.Create(filepath.Join(root, rel))
		must(err)
		defer f.Close()
		must(f.Truncate(size))
		for off, d := range data {
			_, err := f.WriteAt([]byte(d), off)
			must(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "var"), 0o755))
	// 48 MiB with one block of data (a disk image), a file that is all
	// hole, and one whose data ends it.
	sparse("var/disk.img", 48<<20, map[int64]string{20<<20 + 100: "one block of data"})
	sparse("var/empty.img", 1<<20, nil)
	sparse("var/log.img", 3<<20+5, map[int64]string{0: "head", 3 << 20: "tail!"})
	must(os.Link(filepath.Join(root, "usr/lib/data/hard1"), filepath.Join(root, "usr/lib/hard2")))
	must(os.Link(filepath.Join(root, "usr/lib/data/hard1"), filepath.Join(root, "hard3")))
	must(os.Mkdir(filepath.Join(root, "tmp"), 0o755))
	must(os.Chmod(filepath.Join(root, "tmp"), 0o1777|os.ModeSticky))
	must(os.Mkdir(filepath.Join(root, "shared"), 0o755))
	must(os.Chmod(filepath.Join(root, "shared"), 0o2775|os.ModeSetgid))
	must(os.Symlink("usr/lib", filepath.Join(root, "lib")))
	must(os.Symlink("/nonexistent/absolute", filepath.Join(root, "dangling")))
	must(os.Symlink("../hostname", filepath.Join(root, "etc/up")))
	must(unix.Mkfifo(filepath.Join(root, "etc/fifo"), 0o620))
	if isRoot {
		must(unix.Mknod(filepath.Join(root, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(filepath.Join(root, "loop0"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
		must(unix.Chmod(filepath.Join(root, "null"), 0o666))
		must(os.Lchown(filepath.Join(root, "etc/hostname"), 1234, 5678))
		must(os.Lchown(filepath.Join(root, "lib"), 42, 43))
		must(os.Lchown(filepath.Join(root, "shared"), 1000, 1000))
		must(os.Chmod(filepath.Join(root, "shared"), 0o2775|os.ModeSetgid)) // chown cleared setgid
		must(os.Lchown(filepath.Join(root, "bin/su"), 0, 0))
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(root, "sock"), Net: "unix"})
	must(err)
	l.SetUnlinkOnClose(false)
	l.Close()
	must(os.Chmod(filepath.Join(root, "ro"), 0o555))
	setTimes(t, root)
	return root
}

// setTimes gives every path a distinct mtime with nanoseconds, deepest
// first so directory times stick.
func setTimes(t *testing.T, root string) {
	t.Helper()
	var paths []string
	filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	base := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC).Unix()
	for i := len(paths) - 1; i >= 0; i-- {
		ts := []unix.Timespec{unix.NsecToTimespec(base * 1e9), unix.NsecToTimespec((base+int64(i)*3)*1e9 + int64(i)*12345 + 1)}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatal(err)
		}
	}
}

// wholeSecondTimes is the snapshot with mtimes truncated to seconds, as tar
// formats without PAX records keep them.
func wholeSecondTimes(m map[string]node) map[string]node {
	for p, n := range m {
		n.mtime -= n.mtime % 1e9
		m[p] = n
	}
	return m
}

// withoutSocket is the snapshot less the socket, which no tar holds.
func withoutSocket(m map[string]node) map[string]node {
	delete(m, "sock")
	return m
}

// TestOpenWalkedIsTheFileWalked: the pack refuses an entry swapped, after
// the walk looked at it, for a FIFO (without blocking on it), for another
// file, or for a symlink (to a directory or a file outside the tree).
func TestOpenWalkedIsTheFileWalked(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"file", "other"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"dirlink": "sub", "filelink": "file"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	id := func(name string) fileID {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, name), &st); err != nil {
			t.Fatal(err)
		}
		return fileID{uint64(st.Dev), st.Ino}
	}
	for _, c := range []struct {
		name   string
		walked fileID
		dir    bool
	}{
		{"fifo", id("file"), false},     // a FIFO in the file's place
		{"other", id("file"), false},    // another file in its place
		{"filelink", id("file"), false}, // a symlink to it
		{"dirlink", id("sub"), true},    // a symlink to the directory walked
		{"file", id("sub"), true},       // a file in the directory's place
	} {
		done := make(chan error, 1)
		go func() {
			f, _, err := openWalked(int(d.Fd()), c.name, c.name, c.walked, c.dir)
			if f != nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "changed while the tree was packed") {
				t.Errorf("%s in the place of what was walked: %v", c.name, err)
			}
		case <-time.After(10 * time.Second): // a hang guard, not a timing check
			t.Fatalf("%s: the pack blocked opening it", c.name)
		}
	}
	for _, c := range []struct {
		name string
		dir  bool
	}{{"file", false}, {"sub", true}} {
		f, _, err := openWalked(int(d.Fd()), c.name, c.name, id(c.name), c.dir)
		if err != nil {
			t.Errorf("%s, unchanged: %v", c.name, err)
			continue
		}
		f.Close()
	}
}

// TestPackDirSwappedForSymlink: a directory of the tree swapped for a
// symlink to a directory outside it, after the walk looked at it (as a
// container writing its volume while it is packed could), makes the pack
// fail naming it; nothing from outside the tree is read into an image.
// The same for a file swapped for a symlink to a file outside.
func TestPackDirSwappedForSymlink(t *testing.T) {
	for _, victim := range []string{"zzz", "zzz/f"} {
		t.Run(strings.ReplaceAll(victim, "/", "-"), func(t *testing.T) {
			base := t.TempDir()
			src, outside := filepath.Join(base, "src"), filepath.Join(base, "outside")
			for _, d := range []string{filepath.Join(src, "zzz"), outside} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range []string{filepath.Join(src, "zzz", "f"), filepath.Join(outside, "f")} {
				if err := os.WriteFile(f, []byte(f), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			packAfterStat = func(rel string) {
				if rel != victim {
					return
				}
				p := filepath.Join(src, rel)
				aside := filepath.Join(base, "aside")
				target := outside
				if victim != "zzz" {
					target = filepath.Join(outside, "f")
				}
				if err := os.Rename(p, aside); err != nil {
					t.Error(err)
				}
				if err := os.Symlink(target, p); err != nil {
					t.Error(err)
				}
			}
			defer func() { packAfterStat = nil }()
			out := filepath.Join(base, "img.tar.zst")
			err := Pack(src, out, PackOptions{})
			if err == nil || !strings.Contains(err.Error(), filepath.Join(src, victim)+": changed while the tree was packed") {
				t.Fatalf("pack with %s swapped for a symlink: %v", victim, err)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a failed pack left %s (%v)", out, err)
			}
		})
	}
}
