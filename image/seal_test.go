package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"berth/mmapfs"
)

// rewriteAt writes b over the file at path from off, in place: the
// mapping of an unpack that has it open sees the change.
func rewriteAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// sealImages makes the images of TestVerifiedBytesAreUnpacked: a plain
// tar, a zstd tar and a berth image, each with a file "evil" holding
// GOOD after 256 KiB of other data.
func sealImages(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	// Data that does not compress: each image is mapped, not read into
	// memory as a file under 64 KiB is (a private copy already).
	big := sealBig()
	plain := filepath.Join(dir, "img.tar")
	writeTar(t, plain, []entry{{name: "big", typ: tar.TypeReg, data: string(big)}, {name: "evil", typ: tar.TypeReg, data: "GOOD"}})
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tree, "big"), big, 0o644)
	os.WriteFile(filepath.Join(tree, "evil"), []byte("GOOD"), 0o644)
	berth := filepath.Join(dir, "img.berth.tar.zst")
	if err := Pack(tree, berth, PackOptions{FrameSize: testFrameSize}); err != nil {
		t.Fatal(err)
	}
	zst := filepath.Join(dir, "img.tar.zst")
	run(t, "zstd", "-q", "-3", plain, "-o", zst)
	return []string{plain, zst, berth}
}

// sealBig is the 256 KiB of "big" in sealImages's images.
func sealBig() []byte {
	big := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{1}).Read(big)
	return big
}

// TestVerifiedBytesAreUnpacked: with a digest asked, the bytes unpacked are
// those the digest was checked on. A file rewritten in place after the
// check (here at the step "staging", between the check and the first
// entry) is refused as changed, and nothing is unpacked; unchanged, the
// same unpack works.
func TestVerifiedBytesAreUnpacked(t *testing.T) {
	imgs := sealImages(t)
	// The images are under the size Seal copies whole: that copy is what
	// is read, the rewrite does not reach it.
	for _, img := range imgs {
		digest, _ := Digest(img, "")
		dest := filepath.Join(t.TempDir(), "out")
		data, _ := os.ReadFile(img)
		crashPoint = func(step string) {
			if step == "staging" {
				rewriteAt(t, img, int64(len(data)/2), []byte{data[len(data)/2] ^ 0xff})
			}
		}
		_, err := Unpack(img, dest, UnpackOptions{Digest: digest})
		crashPoint = nil
		os.WriteFile(img, data, 0o644)
		big, _ := os.ReadFile(filepath.Join(dest, "big"))
		if err != nil || !bytes.Equal(big, sealBig()) {
			t.Errorf("%s copied whole: %v; big is what was verified: %v", filepath.Base(img), err, bytes.Equal(big, sealBig()))
		}
	}
	// Sealed by chunks, as larger images are.
	defer mmapfs.SetSealCopyMax(mmapfs.SetSealCopyMax(0))
	for _, img := range imgs {
		t.Run(filepath.Base(img), func(t *testing.T) {
			digest, err := Digest(img, "")
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(img)
			off := int64(bytes.LastIndex(data, []byte("GOOD")))
			evil := []byte("EVIL")
			if filepath.Ext(img) == ".zst" { // a byte of big's compressed data
				off = int64(len(data) / 2)
				evil = []byte{data[off] ^ 0xff}
			}
			dest := filepath.Join(t.TempDir(), "out")
			crashPoint = func(step string) {
				if step == "staging" {
					rewriteAt(t, img, off, evil)
				}
			}
			_, err = Unpack(img, dest, UnpackOptions{Digest: digest})
			crashPoint = nil
			if !errors.Is(err, mmapfs.ErrChanged) {
				t.Fatalf("rewritten after the check: %v; want %v", err, mmapfs.ErrChanged)
			}
			if _, serr := os.Lstat(dest); !os.IsNotExist(serr) {
				t.Errorf("%s exists after the refusal (%v)", dest, serr)
			}
			t.Log(err)
			os.WriteFile(img, data, 0o644)
			if _, err := Unpack(img, dest, UnpackOptions{Digest: digest}); err != nil {
				t.Fatalf("unchanged: %v", err)
			}
			if got, _ := os.ReadFile(filepath.Join(dest, "evil")); string(got) != "GOOD" {
				t.Errorf("evil holds %q", got)
			}
		})
	}
}

// TestCacheUnpacksItsDigest: the cache names an entry by the image's
// digest, so what it unpacks must have that digest, whether the digest
// was hashed by this Prepare or remembered from an earlier one. A file
// rewritten in place between the two is refused, and no entry is made.
func TestCacheUnpacksItsDigest(t *testing.T) {
	defer mmapfs.SetSealCopyMax(mmapfs.SetSealCopyMax(0))
	imgs := sealImages(t)
	img := imgs[0]
	data, _ := os.ReadFile(img)
	off := int64(bytes.LastIndex(data, []byte("GOOD")))
	for _, remembered := range []bool{false, true} {
		c, err := OpenCache(filepath.Join(t.TempDir(), "cache"))
		if err != nil {
			t.Fatal(err)
		}
		if remembered { // a first Prepare leaves the memo; its entry goes
			p, err := c.Prepare(img, PrepareOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.Release()
			if err := os.RemoveAll(c.entryDir(p.Digest)); err != nil {
				t.Fatal(err)
			}
		}
		crashPoint = func(step string) {
			if step == "locked" {
				rewriteAt(t, img, off, []byte("EVIL"))
			}
		}
		_, err = c.Prepare(img, PrepareOptions{})
		crashPoint = nil
		os.WriteFile(img, data, 0o644)
		if !errors.Is(err, mmapfs.ErrChanged) {
			t.Fatalf("remembered digest %v: %v; want %v", remembered, err, mmapfs.ErrChanged)
		}
		t.Log(err)
		entries, _ := filepath.Glob(filepath.Join(c.Root, "sha256*"))
		if len(entries) != 0 {
			t.Errorf("remembered digest %v: entries %v after the refusal", remembered, entries)
		}
	}
}

// TestOwnerOutOfRange: an owner chown would cut to 32 bits (2^32 is root
// then) or take for "unchanged" (2^32-1) is refused, naming the entry,
// by unpack and by pack; 2^32-2 is an owner like any other.
func TestOwnerOutOfRange(t *testing.T) {
	for _, c := range []struct {
		uid, gid int64
		ok       bool
	}{
		{1 << 32, 0, false}, {0, 1 << 32, false}, {1<<32 - 1, 0, false},
		{0, 99999999999, false}, {1<<32 - 2, 1<<32 - 2, true},
	} {
		if int64(int(c.uid)) != c.uid || int64(int(c.gid)) != c.gid {
			continue // a 32-bit archive/tar cannot hold it either
		}
		dir := t.TempDir()
		img := filepath.Join(dir, "img.tar")
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
		tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 3, Uid: int(c.uid), Gid: int(c.gid), Format: tar.FormatPAX})
		tw.Write([]byte("#!x"))
		tw.Close()
		os.WriteFile(img, buf.Bytes(), 0o644)
		dest := filepath.Join(dir, "out")
		_, err := Unpack(img, dest, UnpackOptions{})
		packErr := Pack(img, filepath.Join(dir, "img.berth"), PackOptions{})
		if c.ok {
			if err != nil || packErr != nil {
				t.Errorf("owner %d:%d: unpack %v, pack %v", c.uid, c.gid, err, packErr)
			}
			continue
		}
		for what, err := range map[string]error{"unpack": err, "pack": packErr} {
			if !errors.Is(err, errBadOwner) || !bytes.Contains([]byte(err.Error()), []byte(`"bin/sh"`)) {
				t.Errorf("owner %d:%d: %s: %v; want the entry refused", c.uid, c.gid, what, err)
			}
		}
		if _, serr := os.Lstat(dest); !os.IsNotExist(serr) {
			t.Errorf("owner %d:%d: %s exists after the refusal", c.uid, c.gid, dest)
		}
	}
}

// TestCheckOwnerPAX: a PAX id past 32 bits is refused even where
// archive/tar cut it to an int that fits (2^32 is 0 on 32-bit platforms).
func TestCheckOwnerPAX(t *testing.T) {
	for _, c := range []struct {
		rec map[string]string
		ok  bool
	}{
		{map[string]string{"uid": "4294967296"}, false},
		{map[string]string{"gid": "4294967295"}, false},
		{map[string]string{"uid": "-1"}, false},
		{map[string]string{"uid": "x"}, false},
		{map[string]string{"uid": "4294967294", "gid": "0"}, true},
		{nil, true},
	} {
		err := checkOwner(&tar.Header{Name: "f", PAXRecords: c.rec})
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, errBadOwner)) {
			t.Errorf("PAX %v: %v; want ok %v", c.rec, err, c.ok)
		}
	}
}

// TestCacheHitConfig: a cache hit takes the image's run config from the
// entry, as read once the image was verified, not from the image file,
// which is then not hashed (its digest is remembered): a rewrite the
// file's identity does not show — here the memo made to vouch for the
// rewritten file, as a write through a shared mapping on tmpfs, which
// changes no time, would leave it — does not reach the container.
func TestCacheHitConfig(t *testing.T) {
	frame := func(cmd string) []byte {
		f, err := appendConfigFrame(nil, Config{Cmd: []string{cmd}})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	img := imageWithTrailer(t, frame("/bin/good"))
	evil, err := os.ReadFile(imageWithTrailer(t, frame("/bin/evi1")))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(img); err != nil || fi.Size() != int64(len(evil)) {
		t.Fatalf("the two images differ in size (%v, %d): the rewrite would leave a torn file", err, len(evil))
	}
	c, err := OpenCache(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Prepare(img, PrepareOptions{})
	if err != nil || len(p.Config.Cmd) != 1 || p.Config.Cmd[0] != "/bin/good" {
		t.Fatalf("first prepare: %+v, %v", p.Config, err)
	}
	p.Release()
	good := p.Digest
	rewriteAt(t, img, 0, evil)
	id, err := memoIdentity(img)
	if err != nil {
		t.Fatal(err)
	}
	memo, abs := c.memoPath(img)
	if err := os.WriteFile(memo, []byte(abs+"\n"+id+"\n"+good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err = c.Prepare(img, PrepareOptions{})
	if err != nil || !p.Cached || p.Digest != good {
		t.Fatalf("second prepare: cached %v, digest %s, %v", p.Cached, p.Digest, err)
	}
	p.Release()
	if len(p.Config.Cmd) != 1 || p.Config.Cmd[0] != "/bin/good" {
		t.Errorf("a cache hit gives the rewritten file's config %+v", p.Config)
	}
	// An entry without the copy (an older berth's) has the file hashed:
	// rewritten, it is refused.
	if err := os.Remove(filepath.Join(c.entryDir(good), configFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Prepare(img, PrepareOptions{}); !errors.Is(err, mmapfs.ErrChanged) {
		t.Errorf("a cache hit without the entry's config, on a rewritten file: %v; want %v", err, mmapfs.ErrChanged)
	}
}

// TestVouchedNotSealed: a digest vouched for (Remember: the boot image's
// files; PrepareOptions.Vouched: a pulled blob, hashed as it arrived) is
// taken as the file's: the file is neither hashed nor sealed, as before
// sealing existed; one the cache hashed itself is sealed.
func TestVouchedNotSealed(t *testing.T) {
	img := sealImages(t)[2]
	digest, err := Digest(img, "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenCache(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	sealed := func() bool {
		in, err := openInput(img, "", Limits{}.withDefaults())
		if err != nil {
			t.Fatal(err)
		}
		defer in.close()
		if d, err := c.inputDigest(in); err != nil || d != digest {
			t.Fatalf("digest %s, %v; want %s", d, err, digest)
		}
		if _, err := in.seal(digest); err != nil {
			t.Fatal(err)
		}
		return in.m.Sealed()
	}
	if !sealed() {
		t.Error("a file the cache hashed is not sealed")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(img, &st); err != nil {
		t.Fatal(err)
	}
	if err := c.Remember(img, digest, st.Size, uint64(st.Dev)); err != nil {
		t.Fatal(err)
	}
	if sealed() {
		t.Error("a file whose digest was vouched for (Remember) is sealed")
	}
	p, err := c.Prepare(img, PrepareOptions{Digest: digest, Vouched: true})
	if err != nil || p.Digest != digest {
		t.Fatalf("vouched prepare: %s, %v", p.Digest, err)
	}
	p.Release()
}
