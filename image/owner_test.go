package image

import (
	"archive/tar"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestSetgidDestination unpacks, as root, into a destination staged in a
// setgid directory, whose group every directory and file made there
// inherits: each entry still gets the group its header says, whether its
// directory was named by the image or made on the way.
func TestSetgidDestination(t *testing.T) {
	if !isRoot {
		t.Skip("setting owners needs root")
	}
	entries := []entry{
		{name: "a/", typ: tar.TypeDir, mode: 0o755},
		{name: "a/f", typ: tar.TypeReg, data: "f"},
		{name: "a/b/", typ: tar.TypeDir, mode: 0o750},
		{name: "a/b/g", typ: tar.TypeReg, data: "g"},
		{name: "made/on/the/way", typ: tar.TypeReg, data: "w"},
		{name: "a/l", typ: tar.TypeSymlink, link: "f"},
		{name: "a/p", typ: tar.TypeFifo},
	}
	for mode, m := range unpackModes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			arc := filepath.Join(dir, "tree.tar")
			writeTar(t, arc, entries)
			parent := filepath.Join(dir, "shared")
			if err := os.Mkdir(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(parent, 0, 4321); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(parent, 0o2755|os.ModeSetgid); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(parent, "dest")
			if _, err := unpackMode(t, arc, dest, mode, UnpackOptions{}); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"a", "a/f", "a/b", "a/b/g", "made/on/the/way", "a/l", "a/p"} {
				var st syscall.Stat_t
				if err := syscall.Lstat(filepath.Join(dest, p), &st); err != nil {
					t.Fatal(err)
				}
				if st.Gid != 0 {
					t.Errorf("%s: group %d, want the header's 0", p, st.Gid)
				}
			}
		})
	}
}
