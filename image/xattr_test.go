package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestXattrs unpacks extended attributes through the filter: kept ones are
// set on files and directories, the others are dropped, in every mode.
func TestXattrs(t *testing.T) {
	if !isRoot {
		t.Skip("trusted.* and security.capability need root")
	}
	records := map[string]string{
		"SCHILY.xattr.user.note":               "hello",
		"SCHILY.xattr.trusted.overlay":         "y",
		"SCHILY.xattr.security.capability":     string([]byte{1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), // cap_net_raw+p, v2
		"SCHILY.xattr.security.selinux":        "system_u:object_r:etc_t:s0",
		"SCHILY.xattr.system.posix_acl_access": "\x02\x00\x00\x00",
	}
	want := map[string]string{"user.note": "hello", "trusted.overlay": "y"}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, PAXRecords: map[string]string{"SCHILY.xattr.user.dir": "d"}})
	tw.WriteHeader(&tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o755, Size: 1, PAXRecords: records})
	tw.Write([]byte("x"))
	tw.Close()
	for mode, m := range unpackModes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			arc := filepath.Join(dir, "x.tar")
			os.WriteFile(arc, buf.Bytes(), 0o644)
			dest := filepath.Join(dir, "dest")
			var log bytes.Buffer
			if _, err := unpackMode(t, arc, dest, mode, UnpackOptions{Log: &log}); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(dest, "d", "f")
			if !xattrSupported(f) {
				t.Skip("no user xattrs on this filesystem")
			}
			for name, v := range want {
				if got := getXattr(f, name); got != v {
					t.Errorf("%s = %q, want %q", name, got, v)
				}
			}
			if getXattr(f, "security.capability") == "" {
				t.Error("security.capability was not set")
			}
			if got := getXattr(f, "system.posix_acl_access"); got != "" {
				t.Errorf("an ACL was set: %q", got)
			}
			if got := getXattr(filepath.Join(dest, "d"), "user.dir"); got != "d" {
				t.Errorf("directory xattr %q", got)
			}
			if !bytes.Contains(log.Bytes(), []byte("security.selinux (filtered)")) {
				t.Errorf("no warning for the dropped attribute; log %q", log.String())
			}
		})
	}
}

func getXattr(path, name string) string {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func xattrSupported(path string) bool {
	_, err := unix.Lgetxattr(path, "user.note", nil)
	return err != unix.ENOTSUP
}

// TestChmodThroughHandle: the mode change kernels before 6.6 get changes
// the file named, of any type, and never what a symlink points to.
func TestChmodThroughHandle(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	if err := chmodThroughHandle(dfd, "link", 0o600); err != unix.ELOOP {
		t.Errorf("a symlink: %v, want ELOOP", err)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o644 {
		t.Errorf("the symlink's target changed to %v", fi.Mode().Perm())
	}
	for _, name := range []string{"fifo", "sub", "file"} {
		if err := chmodThroughHandle(dfd, name, 0o640); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if fi, _ := os.Lstat(filepath.Join(dir, name)); fi.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v, want 0640", name, fi.Mode().Perm())
		}
	}
}

// TestWarningsBounded: filtered attributes of distinct names, as many as
// an image likes, give at most maxWarnings warnings and one notice that
// no more are given: the set of warnings given does not grow without
// bound (each name would stay in it).
func TestWarningsBounded(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range 20 {
		records := map[string]string{}
		for j := range 100 {
			records[fmt.Sprintf("SCHILY.xattr.security.n%d-%d", i, j)] = "x"
		}
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%d", i), Typeflag: tar.TypeReg, Mode: 0o644, PAXRecords: records})
	}
	tw.Close()
	dir := t.TempDir()
	arc := filepath.Join(dir, "x.tar")
	os.WriteFile(arc, buf.Bytes(), 0o644)
	var log bytes.Buffer
	if _, err := Unpack(arc, filepath.Join(dir, "dest"), UnpackOptions{Log: &log}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(log.String(), "berth: unpack: ")
	if lines != maxWarnings+1 || !strings.Contains(log.String(), fmt.Sprintf("more than %d warnings: no more are given", maxWarnings)) {
		t.Errorf("%d warning lines for 2000 filtered attributes, want %d and the notice; log ends %q", lines, maxWarnings+1, log.String()[max(0, log.Len()-200):])
	}
}
