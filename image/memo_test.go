package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRemember: a remembered digest is the file's digest, hashing
// nothing, until the file changes; a pin is checked against it; and what
// does not match what was vouched for is not remembered.
func TestRemember(t *testing.T) {
	_, img := packTree(t)
	real := fileDigest(t, img)
	vouched := "sha256:" + strings.Repeat("ab", 32) // not the file's: shows no hashing
	var st unix.Stat_t
	if err := unix.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	c, err := OpenCache(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		name, path, digest string
		size               int64
		dev                uint64
	}{
		{"another size", img, vouched, st.Size + 1, uint64(st.Dev)},
		{"another device", img, vouched, st.Size, uint64(st.Dev) + 1},
		{"a directory", filepath.Dir(img), vouched, st.Size, uint64(st.Dev)},
		{"a bad digest", img, "sha256:AB", st.Size, uint64(st.Dev)},
		{"no file", img + ".missing", vouched, st.Size, uint64(st.Dev)},
	}
	for _, r := range refused {
		if err := c.Remember(r.path, r.digest, r.size, r.dev); err == nil {
			t.Errorf("%s: remembered", r.name)
		}
	}
	if d, err := c.Digest(img, ""); err != nil || d != real {
		t.Fatalf("after refusals: digest %s, %v; want the file's %s", d, err, real)
	}
	if err := c.Remember(img, vouched, st.Size, uint64(st.Dev)); err != nil {
		t.Fatal(err)
	}
	if d, err := c.Digest(img, ""); err != nil || d != vouched {
		t.Errorf("remembered: digest %s, %v; want %s", d, err, vouched)
	}
	if _, err := c.Prepare(img, PrepareOptions{Digest: real}); err == nil {
		t.Error("a pin other than the remembered digest was accepted")
	}
	// A change of the file changes its identity (here its modification
	// time, set to another one): the memo no longer holds.
	old := time.Unix(1e9, 0)
	if err := os.Chtimes(img, old, old); err != nil {
		t.Fatal(err)
	}
	if d, err := c.Digest(img, ""); err != nil || d != real {
		t.Errorf("after a change: digest %s, %v; want the file's %s", d, err, real)
	}
}

// TestMemoIsOfTheFileMapped: the memo is looked up by the identity of the
// file whose bytes are mapped, not of whatever the path names when the
// digest is asked for: a file swapped in under a remembered name between
// the two gets its own digest, never the remembered one.
func TestMemoIsOfTheFileMapped(t *testing.T) {
	_, trusted := packTree(t)
	c, err := OpenCache(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	want := fileDigest(t, trusted)
	if d, err := c.Digest(trusted, ""); err != nil || d != want {
		t.Fatalf("digest %s, %v", d, err)
	}
	// Another image at the same path, mapped; then the trusted file back
	// under the path before the digest is asked for.
	dir := filepath.Dir(trusted)
	if err := os.Rename(trusted, filepath.Join(dir, "trusted.keep")); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.tar.zst")
	if err := Pack(t.TempDir(), other, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, trusted); err != nil {
		t.Fatal(err)
	}
	evil := fileDigest(t, trusted)
	in, err := openInput(trusted, "", Limits{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer in.close()
	if err := os.Rename(trusted, filepath.Join(dir, "other.keep")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "trusted.keep"), trusted); err != nil {
		t.Fatal(err)
	}
	if d, err := c.inputDigest(in); err != nil || d != evil {
		t.Errorf("digest of the file mapped: %s, %v; want its own %s, not the remembered %s", d, err, evil, want)
	}
	// The path names the trusted file again, unchanged: its memo holds.
	if d, err := c.Digest(trusted, ""); err != nil || d != want {
		t.Errorf("the trusted file again: %s, %v; want %s", d, err, want)
	}
}
