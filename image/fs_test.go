package image

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"berth/mmapfs"
)

// TestFS reads a packed tree back through mmapfs: io/fs's own conformance
// test, then every file's bytes and metadata against the source.
func TestFS(t *testing.T) {
	want, img := packTree(t)
	fsys, err := mmapfs.OpenFS(img, mmapfs.Options{CacheBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	// fstest opens everything it lists, so it gets the subtrees without
	// dangling symlinks.
	for dir, files := range map[string][]string{"usr": {"lib/big.bin", "lib/hard2"}, "bin": {"su", "wall"}} {
		sub, err := fs.Sub(fsys, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := fstest.TestFS(sub, files...); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(filepath.Dir(img), "tree")
	for p, n := range want {
		info, err := fsys.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		e := info.Sys().(*mmapfs.Entry)
		if e.UID != n.uid || e.GID != n.gid || info.ModTime().UnixNano() != n.mtime || (n.typ != 0o120000 && e.Mode != n.perm) {
			t.Errorf("%s: entry %+v, source %+v", p, e, brief(n))
		}
		if n.typ == 0o100000 {
			got, err := fsys.ReadFile(p)
			wantData, _ := os.ReadFile(filepath.Join(src, p))
			if err != nil || !bytes.Equal(got, wantData) {
				t.Errorf("%s: %d bytes, %v; want %d bytes", p, len(got), err, len(wantData))
			}
		}
		if n.typ == 0o120000 {
			if l, err := fsys.ReadLink(p); err != nil || l != n.target {
				t.Errorf("%s: link %q %v, want %q", p, l, err, n.target)
			}
		}
	}
}

// TestFSReads seeks and reads across frame boundaries, follows symlinks
// inside the image only, and reports missing names.
func TestFSReads(t *testing.T) {
	_, img := packTree(t)
	fsys, err := mmapfs.OpenFS(img, mmapfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	big, _ := os.ReadFile(filepath.Join(filepath.Dir(img), "tree", "usr/lib/big.bin"))
	f, err := fsys.Open("lib/big.bin") // through the symlink lib -> usr/lib
	if err != nil {
		t.Fatal(err)
	}
	r := f.(io.ReadSeeker)
	for _, off := range []int64{0, 65530, 131072, int64(len(big)) - 3, 200000} {
		if _, err := r.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		n, err := io.ReadFull(r, buf)
		end := min(off+100, int64(len(big)))
		if !bytes.Equal(buf[:n], big[off:end]) || (end-off == 100) != (err == nil) {
			t.Errorf("at %d: %d bytes, %v", off, n, err)
		}
	}
	cases := []struct {
		name string
		err  error
	}{
		{"missing", fs.ErrNotExist},
		{"dangling", fs.ErrNotExist},       // -> /nonexistent/absolute: inside the image
		{"etc/up", fs.ErrNotExist},         // -> ../hostname
		{"../etc/hostname", fs.ErrInvalid}, // not a valid io/fs name
		{"etc/hostname/x", nil},            // not a directory
	}
	for _, c := range cases {
		_, err := fsys.Open(c.name)
		if err == nil || (c.err != nil && !errors.Is(err, c.err)) {
			t.Errorf("open %s: %v, want %v", c.name, err, c.err)
		}
	}
}

// TestFSDamaged opens images whose index is damaged or missing, and reads
// one truncated under the mapping: errors, never a crash.
func TestFSDamaged(t *testing.T) {
	_, img := packTree(t)
	good, _ := os.ReadFile(img)
	table, err := mmapfs.ParseSeekTable(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	var index [2]int64
	for _, s := range table.Skippable {
		if s.Magic == mmapfs.IndexFrameMagic {
			index = s.Payload
		}
	}
	flip := func(at int64) []byte {
		b := append([]byte{}, good...)
		b[at] ^= 0x40
		return b
	}
	noIndex := append(append([]byte{}, good[:table.DataEnd]...), good[table.TableStart:]...)
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"index byte flipped", flip(index[0] + 100), mmapfs.ErrIndex},
		{"index version", flip(index[0] + 4), mmapfs.ErrIndex},
		{"no index", noIndex, mmapfs.ErrNoIndex},
	}
	for _, c := range cases {
		p := filepath.Join(t.TempDir(), "img")
		os.WriteFile(p, c.b, 0o644)
		if f, err := mmapfs.OpenFS(p, mmapfs.Options{}); !errors.Is(err, c.want) {
			if f != nil {
				f.Close()
			}
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	p := filepath.Join(t.TempDir(), "img")
	os.WriteFile(p, good, 0o644)
	fsys, err := mmapfs.OpenFS(p, mmapfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	_, err = fsys.ReadFile("usr/lib/big.bin")
	if !errors.Is(err, mmapfs.ErrFault) {
		t.Errorf("read after truncation: %v, want ErrFault", err)
	}
	if !strings.Contains(errString(err), "big.bin") {
		t.Errorf("error %v does not name the file", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestIndexVersion1Image reads an image packed by berth before the index
// gained nanoseconds and sparse files (testdata/v1, index version 1):
// it still unpacks, and mmapfs still lists and reads it.
func TestIndexVersion1Image(t *testing.T) {
	img := filepath.Join("testdata", "v1", "image.tar.zst")
	dest := filepath.Join(t.TempDir(), "dest")
	if _, err := Unpack(img, dest, UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	compareLists(t, map[string]string{"bin": "dir", "etc": "dir", "bin/hi": "file #!/bin/sh\necho hi\n",
		"bin/motd": "-> ../etc/motd", "etc/motd": "file packed by berth before index version 2\n"}, listTree(t, dest))
	fsys, err := mmapfs.OpenFS(img, mmapfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	got, err := fsys.ReadFile("bin/motd")
	if err != nil || string(got) != "packed by berth before index version 2\n" {
		t.Errorf("bin/motd: %q %v", got, err)
	}
	info, err := fsys.Stat("bin/hi")
	if err != nil || info.ModTime().Unix() != time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).Unix() || info.Mode() != 0o755 {
		t.Errorf("bin/hi: %v %v", info, err)
	}
}

// TestFSSparse reads sparse files through mmapfs at offsets around their
// holes and data, against the source files.
func TestFSSparse(t *testing.T) {
	_, img := packTree(t)
	fsys, err := mmapfs.OpenFS(img, mmapfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	src := filepath.Join(filepath.Dir(img), "tree")
	for _, c := range []struct {
		name     string
		off, len int64
	}{
		{"var/disk.img", 0, 4096}, {"var/disk.img", 20<<20 + 90, 40}, {"var/disk.img", 20<<20 + 110, 1 << 20},
		{"var/disk.img", 48<<20 - 10, 100}, {"var/empty.img", 4000, 200}, {"var/log.img", 2, 10},
		{"var/log.img", 3<<20 - 3, 100}, {"var/log.img", 0, 3<<20 + 5},
	} {
		want := make([]byte, c.len)
		wf, err := os.Open(filepath.Join(src, c.name))
		if err != nil {
			t.Fatal(err)
		}
		wn, _ := wf.ReadAt(want, c.off)
		wf.Close()
		f, err := fsys.Open(c.name)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, c.len)
		n, err := f.(io.ReaderAt).ReadAt(got, c.off)
		if n != wn || !bytes.Equal(got[:n], want[:wn]) || (n < len(got)) != (err == io.EOF) {
			t.Errorf("%s at %d: %d bytes (%v), want %d", c.name, c.off, n, err, wn)
		}
		if info, _ := f.Stat(); info.Size() != map[string]int64{"var/disk.img": 48 << 20, "var/empty.img": 1 << 20, "var/log.img": 3<<20 + 5}[c.name] {
			t.Errorf("%s: size %d", c.name, info.Size())
		}
		if e := fileEntry(t, fsys, c.name); !e.Sparse || e.Stored >= e.Size {
			t.Errorf("%s: index entry %+v is not sparse", c.name, e)
		}
	}
}

func fileEntry(t *testing.T, fsys *mmapfs.FS, name string) *mmapfs.Entry {
	t.Helper()
	info, err := fsys.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*mmapfs.Entry)
}

// TestFSReadFileBounded: ReadFile reads a file whole up to
// mmapfs.MaxReadFile bytes; a sparse file one byte larger (a few bytes
// of image can claim exabytes) is refused, not allocated or read as
// zeros until memory runs out.
func TestFSReadFileBounded(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "tree")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "small"), []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	big, err := os.Create(filepath.Join(src, "big"))
	if err == nil {
		err = big.Truncate(mmapfs.MaxReadFile + 1)
		big.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "img.tar.zst")
	if err := Pack(src, img, PackOptions{FrameSize: testFrameSize}); err != nil {
		t.Fatal(err)
	}
	fsys, err := mmapfs.OpenFS(img, mmapfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	if b, err := fsys.ReadFile("small"); err != nil || string(b) != "hi" {
		t.Errorf("small: %v %q", err, b)
	}
	if b, err := fsys.ReadFile("big"); err == nil || !strings.Contains(err.Error(), "to read whole") {
		t.Errorf("big: %v, %d bytes", err, len(b))
	}
}
