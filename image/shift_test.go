package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestShifted makes shifted copies of a cached tree: owners mapped,
// modes (setuid included), symlinks (not followed), hard links and times
// kept, the cached tree untouched; one copy per key, at most 4 per
// image, an owner outside the maps refused, and all of them removed with
// the image by GC.
func TestShifted(t *testing.T) {
	if !isRoot {
		t.Skip("shifted copies chown")
	}
	img := shiftFixture(t)
	c, p := preparedCache(t, img)
	shift := func(base uint32) Shift {
		return Shift{Key: fmt.Sprintf("k%d", base), Map: func(uid, gid uint32) (uint32, uint32, error) {
			if uid >= 65536 || gid >= 65536 {
				return 0, 0, fmt.Errorf("owner %d:%d is outside the maps", uid, gid)
			}
			return base + uid, base + gid, nil
		}}
	}
	root, err := c.Shifted(p.Digest, shift(100000))
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Shifted(p.Digest, shift(100000))
	if err != nil || again != root {
		t.Fatalf("the same key again: %s, %v; want %s", again, err, root)
	}
	owner := func(p string) string {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err.Error()
		}
		return fmt.Sprintf("%d:%d %o", st.Uid, st.Gid, st.Mode&0o7777)
	}
	for p, want := range map[string]string{".": "100000:100000 755", "bin/app": "100000:100000 4755",
		"home/u/f": "101000:101000 600", "bin/escape": "100000:100000 777"} {
		if got := owner(filepath.Join(root, p)); got != want {
			t.Errorf("shifted %s: %s, want %s", p, got, want)
		}
	}
	if got := owner(filepath.Join(p.Rootfs, "home/u/f")); got != "1000:1000 600" {
		t.Errorf("the cached tree's home/u/f: %s, want it untouched", got)
	}
	if link, _ := os.Readlink(filepath.Join(root, "bin/escape")); link != "/etc/shadow" {
		t.Errorf("symlink: %q", link)
	}
	a, _ := os.Stat(filepath.Join(root, "bin/app"))
	b, _ := os.Stat(filepath.Join(root, "bin/alias"))
	orig, _ := os.Stat(filepath.Join(p.Rootfs, "bin/app"))
	if !os.SameFile(a, b) || os.SameFile(a, orig) || !a.ModTime().Equal(orig.ModTime()) {
		t.Error("hard link not kept, linked to the cached tree, or mtime changed")
	}
	for i := uint32(1); i <= 3; i++ {
		if _, err := c.Shifted(p.Digest, shift(100000+i*65536)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Shifted(p.Digest, shift(900000)); err == nil || !strings.Contains(err.Error(), "the limit") {
		t.Errorf("a fifth copy: %v, want refused", err)
	}
	bad := Shift{Key: "bad", Map: func(uid, gid uint32) (uint32, uint32, error) {
		return 0, 0, fmt.Errorf("owner %d:%d is outside the maps", uid, gid)
	}}
	c2, _ := OpenCache(filepath.Join(t.TempDir(), "cache2"))
	p2, err := c2.Prepare(img, PrepareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p2.Release()
	if _, err := c2.Shifted(p2.Digest, bad); err == nil || !strings.Contains(err.Error(), "outside the maps") {
		t.Errorf("an owner outside the maps: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(c2.Root, "sha256-*", ".shift-staging-*")); len(left) != 0 {
		t.Errorf("staging left behind: %v", left)
	}
	if _, err := c.GC(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("the shifted copy after GC: %v", err)
	}
}

// shiftFixture packs a tree with a setuid file hard-linked twice, a file
// of uid 1000 and a symlink to the host's /etc/shadow.
func shiftFixture(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	for _, d := range []string{"bin", "home/u"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, data string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("bin/app", "app", 0o755)
	write("home/u/f", "u's", 0o600)
	if err := os.Chown(filepath.Join(src, "home/u/f"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(filepath.Join(src, "bin/app"), 0o4755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "bin/app"), filepath.Join(src, "bin/alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/shadow", filepath.Join(src, "bin/escape")); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "img.tar.zst")
	if err := Pack(src, img, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestShiftedForeign: a shifted copy planted on the cache's disk — a
// symlink to a directory of the host, or a real directory whose rootfs
// is a symlink to / — is not followed: the copy is made anew.
func TestShiftedForeign(t *testing.T) {
	if !isRoot {
		t.Skip("shifted copies chown")
	}
	host := t.TempDir()
	if err := os.MkdirAll(filepath.Join(host, "rootfs", "host-secret"), 0o700); err != nil {
		t.Fatal(err)
	}
	shift := Shift{Key: "k1", Map: func(uid, gid uint32) (uint32, uint32, error) { return 100000 + uid, 100000 + gid, nil }}
	for _, plant := range []func(copyDir string) error{
		func(copyDir string) error { return os.Symlink(host, copyDir) },
		func(copyDir string) error {
			if err := os.Mkdir(copyDir, 0o700); err != nil {
				return err
			}
			return os.Symlink("/", filepath.Join(copyDir, "rootfs"))
		},
	} {
		c, p := preparedCache(t, shiftFixture(t))
		copyDir := filepath.Join(c.entryDir(p.Digest), "shifted-k1")
		if err := plant(copyDir); err != nil {
			t.Fatal(err)
		}
		root, err := c.Shifted(p.Digest, shift)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{copyDir, root} {
			if fi, err := os.Lstat(path); err != nil || !fi.IsDir() {
				t.Errorf("%s: %v %v, want a directory berth made", path, fi.Mode(), err)
			}
		}
		if _, err := os.Lstat(filepath.Join(root, "host-secret")); err == nil {
			t.Error("the shifted copy is the host's directory")
		}
		if _, err := os.Stat(filepath.Join(host, "rootfs", "host-secret")); err != nil {
			t.Errorf("the host directory the symlink named: %v", err)
		}
	}
}
