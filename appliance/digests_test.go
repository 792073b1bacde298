package appliance_test

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"berth/appliance"
	"berth/boot"
	"berth/image"
)

// TestInitramfsDigests: the initramfs lists the digest of each image it
// holds (twice named, listed once), with its size, and none of an image
// on the data partition or of a file that is not an image; an image
// whose pin the config gets wrong is refused at build time.
func TestInitramfsDigests(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	write(t, filepath.Join(tree, "bin", "hello"), "hello")
	img := filepath.Join(dir, "app.tar.zst")
	if err := image.Pack(tree, img, image.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	digest, err := image.Digest(img, "")
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "junk.tar.zst"), "not an image")
	conf := func(pin string) string {
		return `[storage]
device = "LABEL=data"
[[container]]
name = "a"
image = "/images/app.tar.zst"
command = ["true"]
digest = "` + pin + `"
[[container]]
name = "b"
image = "/images/app.tar.zst"
command = ["true"]
[[container]]
name = "junk"
image = "junk.tar.zst"
command = ["true"]
[[container]]
name = "later"
image = "/data/app.tar.zst"
command = ["true"]
`
	}
	build := func(pin string) (*appliance.Built, error) {
		config := filepath.Join(dir, "berth.toml")
		write(t, config, conf(pin))
		return appliance.Build(appliance.Spec{Config: config, Arch: runtime.GOARCH, Berth: testBerth(t),
			Files: map[string]string{"/images/app.tar.zst": img}})
	}
	b, err := build(digest)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "initramfs.cpio.zst")
	if err := b.Write(out); err != nil {
		t.Fatal(err)
	}
	ds, err := boot.ParseBootDigests([]byte(readInitramfs(t, out)[strings.TrimPrefix(boot.BootDigests, "/")].data))
	if err != nil {
		t.Fatal(err)
	}
	want := boot.BootDigest{Path: "/images/app.tar.zst", Size: st.Size(), Digest: digest}
	if len(ds) != 1 || ds[0] != want {
		t.Errorf("listed %+v, want only %+v", ds, want)
	}
	if !strings.Contains(strings.Join(b.Notes, "\n"), "/etc/junk.tar.zst is not listed") {
		t.Errorf("no note about the file that is not an image: %q", b.Notes)
	}
	wrong := "sha256:" + strings.Repeat("0", 64)
	if _, err := build(wrong); err == nil || !strings.Contains(err.Error(), "pins "+wrong) {
		t.Errorf("a wrong pin: %v", err)
	}
}

// TestInitramfsImageChangedBeforeWrite: an image listed with its digest
// that changes between the build and the write (same size, other bytes)
// fails the write: the archive never holds bytes other than the ones the
// listed digest names.
func TestInitramfsImageChangedBeforeWrite(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	write(t, filepath.Join(tree, "bin", "hello"), "hello")
	img := filepath.Join(dir, "app.tar.zst")
	if err := image.Pack(tree, img, image.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "berth.toml")
	write(t, config, "[[container]]\nname = \"a\"\nimage = \"/images/app.tar.zst\"\ncommand = [\"true\"]\n")
	b, err := appliance.Build(appliance.Spec{Config: config, Arch: runtime.GOARCH, Berth: testBerth(t),
		Files: map[string]string{"/images/app.tar.zst": img}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "initramfs.cpio.zst")
	if err := b.Write(out); err == nil || !strings.Contains(err.Error(), "changed while the initramfs was written") {
		t.Errorf("write after the image changed: %v", err)
	}
}
