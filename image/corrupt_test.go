package image

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/mmapfs"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// unpackBytes writes b to a file and unpacks it into a fresh directory.
func unpackBytes(t *testing.T, b []byte, opts UnpackOptions) (Stats, error) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "image")
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return Unpack(src, filepath.Join(dir, "dest"), opts)
}

// TestTruncatedAndCorrupt damages a berth image, a plain tar and a gzip
// tar in many ways: every one must give an error, never a panic or success.
func TestTruncatedAndCorrupt(t *testing.T) {
	_, img := packTree(t)
	good, _ := os.ReadFile(img)
	plainTar := decodeAll(t, good)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plainTar)
	zw.Close()

	flip := func(b []byte, at int) []byte {
		c := append([]byte{}, b...)
		c[at] ^= 0x55
		return c
	}
	cases := map[string][]byte{
		"berth cut in half":         good[:len(good)/2],
		"berth without last byte":   good[:len(good)-1],
		"berth cut to 100 bytes":    good[:100],
		"berth first frame flipped": flip(good, 200),
		"berth mid frame flipped":   flip(good, len(good)/2),
		"berth table size flipped":  flip(good, len(good)-20),
		"tar cut mid file":          plainTar[:len(plainTar)/2+100],
		"tar header flipped":        flip(plainTar, 100),
		"gzip cut":                  gz.Bytes()[:gz.Len()/2],
		"gzip flipped":              flip(gz.Bytes(), gz.Len()/2),
		"empty file":                {},
		"garbage":                   bytes.Repeat([]byte("garbage!"), 100),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := unpackBytes(t, b, UnpackOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
		})
	}
}

// decodeAll returns the tar stream inside a zstd file.
func decodeAll(t *testing.T, b []byte) []byte {
	t.Helper()
	d, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out, err := d.DecodeAll(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTruncatedTarNamesEntry checks a truncated tar's error names the entry
// being read and its offset.
func TestTruncatedTarNamesEntry(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "first", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	tw.Write([]byte("abc"))
	tw.WriteHeader(&tar.Header{Name: "second", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5000})
	tw.Write(make([]byte, 5000))
	tw.Close()
	_, err := unpackBytes(t, buf.Bytes()[:3000], UnpackOptions{})
	if err == nil || !strings.Contains(err.Error(), `entry "second" at offset 1024`) {
		t.Fatalf("error %v: want it to name entry \"second\" at offset 1024", err)
	}
}

// TestTrailingData appends data after a tar's end blocks: up to
// maxTrailing bytes is padding and the entries are unpacked; one byte more
// is refused, as a zstd tar and as a berth image, without decoding the rest.
func TestTrailingData(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "file", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3})
	tw.Write([]byte("abc"))
	tw.Close()
	for _, format := range []string{"zstd", "berth"} {
		// archive/tar ends with the two zero blocks alone: what is
		// appended is all that follows them.
		for _, trailing := range []int{maxTrailing, maxTrailing + 1, 4 * maxTrailing} {
			raw := append(bytes.Clone(buf.Bytes()), make([]byte, trailing)...)
			img := compress(t, "zstd", raw)
			if format == "berth" {
				img = berthFromTar(t, raw, 1<<20)
			}
			st, err := unpackBytes(t, img, UnpackOptions{})
			switch {
			case trailing <= maxTrailing && (err != nil || st.Entries != 1):
				t.Errorf("%s, %d bytes after the end blocks: %v, %d entries", format, trailing, err, st.Entries)
			case trailing > maxTrailing && (err == nil || !strings.Contains(err.Error(), "more than 16777216 bytes after the end of the archive")):
				t.Errorf("%s, %d bytes after the end blocks: %v, want them refused", format, trailing, err)
			}
		}
	}
}

// zstdHeader builds a zstd frame header with the given window descriptor
// or, when fcs > 0, a single-segment frame claiming fcs bytes, followed by
// one tiny raw block.
func zstdHeader(window byte, fcs uint64) []byte {
	b := binary.LittleEndian.AppendUint32(nil, mmapfs.ZstdFrameMagic)
	if fcs > 0 {
		b = append(b, 0xE0) // FCS field 8 bytes, single segment
		b = binary.LittleEndian.AppendUint64(b, fcs)
	} else {
		b = append(b, 0x00, window)
	}
	return append(b, 0x09, 0x00, 0x00, 'x') // last raw block of 1 byte
}

// TestZstdBombs gives tiny inputs that claim huge windows or sizes: each
// must be refused quickly, before any big allocation.
func TestZstdBombs(t *testing.T) {
	hugeFrame := zstdHeader(0, 1<<40)
	table := mmapfs.AppendSeekTable(nil, []mmapfs.Frame{{CSize: uint32(len(hugeFrame)), DSize: 1 << 20}})
	tableHuge := mmapfs.AppendSeekTable(nil, []mmapfs.Frame{{CSize: uint32(len(hugeFrame)), DSize: 1<<32 - 1}})
	cases := map[string][]byte{
		"window 2 TiB":                 zstdHeader(0xF8, 0),
		"window 1 GiB":                 zstdHeader(0xA0, 0),
		"single segment 1 TiB":         hugeFrame,
		"seekable, frame claims 1 TiB": append(append([]byte{}, hugeFrame...), table...),
		"seekable, table claims 4 GiB": append(append([]byte{}, hugeFrame...), tableHuge...),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := unpackBytes(t, b, UnpackOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
			t.Log(err)
		})
	}
}

// TestLimits checks each limit refuses an archive just over it.
func TestLimits(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range 10 {
		tw.WriteHeader(&tar.Header{Name: "f" + string(rune('0'+i)), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1000})
		tw.Write(make([]byte, 1000))
	}
	tw.WriteHeader(&tar.Header{Name: strings.Repeat("d/", 1000) + "f", Typeflag: tar.TypeReg, Mode: 0o644})
	tw.Close()
	var huge bytes.Buffer // claims 1 TiB; the data is not there
	tw = tar.NewWriter(&huge)
	tw.WriteHeader(&tar.Header{Name: "huge", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40})
	tw.Flush()

	cases := []struct {
		name string
		arc  []byte
		lim  Limits
		want error
	}{
		{"entries", buf.Bytes(), Limits{MaxEntries: 5}, errTooManyEntries},
		{"bytes", buf.Bytes(), Limits{MaxBytes: 5500}, errTooManyBytes},
		{"header", buf.Bytes(), Limits{MaxHeaderBytes: 1024}, errHeaderTooBig},
		{"default bytes", huge.Bytes(), Limits{}, errTooManyBytes},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := unpackBytes(t, c.arc, UnpackOptions{Limits: c.lim})
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
		})
	}
	if _, err := unpackBytes(t, buf.Bytes()[:buf.Len()-1024], UnpackOptions{}); err != nil {
		t.Fatalf("within limits: %v", err)
	}
}

// TestTruncatedUnderMapping shrinks the image after it has been mapped:
// every path that reads it (the parallel frame decoders, which copy their
// frames with pread, the streaming decoder, the digest) must give
// ErrFault, not crash on SIGBUS.
func TestTruncatedUnderMapping(t *testing.T) {
	// Incompressible, so the image is mapped: mmapfs reads a file of
	// 64 KiB or less into memory instead.
	dir := t.TempDir()
	data := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{}).Read(data)
	if err := os.MkdirAll(filepath.Join(dir, "tree"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tree", "random"), data, 0o644)
	img := filepath.Join(dir, "img")
	if err := Pack(filepath.Join(dir, "tree"), img, PackOptions{FrameSize: testFrameSize}); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(img)
	lim := Limits{}.withDefaults()
	readers := map[string]func(m *mmapfs.Mapping, table *mmapfs.SeekTable) (io.Reader, func(), error){
		"frames, no helper": func(m *mmapfs.Mapping, table *mmapfs.SeekTable) (io.Reader, func(), error) {
			c, err := newCrew(m, table, lim, 0, nil, "img")
			return newFrameStream(c), c.close, err
		},
		"frames, 3 helpers": func(m *mmapfs.Mapping, table *mmapfs.SeekTable) (io.Reader, func(), error) {
			c, err := newCrew(m, table, lim, 3, nil, "img")
			return newFrameStream(c), c.close, err
		},
		"stream": func(m *mmapfs.Mapping, _ *mmapfs.SeekTable) (io.Reader, func(), error) {
			s, err := openStream(m.NewReader(), FormatZstd, lim, 2)
			if err != nil {
				return nil, nil, err
			}
			return s.r, s.close, nil
		},
		"digest": func(m *mmapfs.Mapping, _ *mmapfs.SeekTable) (io.Reader, func(), error) {
			in := &input{m: m}
			_, err := in.computeDigest()
			return nil, func() {}, err
		},
	}
	for name, open := range readers {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(img, good, 0o644)
			m, err := mmapfs.Map(img)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			table, err := mmapfs.ParseSeekTable(m, m.Size())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, 0); err != nil {
				t.Fatal(err)
			}
			r, closeFn, err := open(m, table)
			if err == nil {
				_, err = io.Copy(io.Discard, r)
				closeFn()
			}
			if !errors.Is(err, mmapfs.ErrFault) {
				t.Errorf("error %v, want ErrFault", err)
			}
		})
	}
}

// TestFreeSpaceLimit unpacks into a 4 MiB tmpfs an archive of 8 MiB: the
// default byte limit, from the destination's free space, refuses it before
// the filesystem fills up.
func TestFreeSpaceLimit(t *testing.T) {
	if !isRoot {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=4m"); err != nil {
		t.Skip("cannot mount tmpfs:", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	arc := filepath.Join(t.TempDir(), "big.tar")
	writeTar(t, arc, []entry{{name: "a", typ: regT, data: strings.Repeat("a", 3<<20)}, {name: "b", typ: regT, data: strings.Repeat("b", 5<<20)}})
	for mode, m := range unpackModes {
		t.Run(m.name, func(t *testing.T) {
			_, err := unpackMode(t, arc, filepath.Join(mnt, "dest"+m.name), mode, UnpackOptions{})
			if !errors.Is(err, errTooManyBytes) || !strings.Contains(err.Error(), "free space") || !strings.Contains(err.Error(), `entry "b"`) {
				t.Fatalf("error %v: want the free-space limit on entry b", err)
			}
			os.RemoveAll(filepath.Join(mnt, "dest"+m.name))
			os.Remove(arc + ".berth")
		})
	}
}
