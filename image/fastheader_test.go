package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// headerBlock is the first block archive/tar writes for hdr.
func headerBlock(t testing.TB, hdr *tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()[:tarBlockSize]
}

// readByTar is what archive/tar's Reader.Next returns for blk.
func readByTar(blk []byte) (*tar.Header, error) {
	return tar.NewReader(bytes.NewReader(append(append([]byte{}, blk...), make([]byte, 2*tarBlockSize)...))).Next()
}

// setChecksum writes blk's checksum as archive/tar does.
func setChecksum(blk []byte) {
	copy(blk[148:156], "        ")
	var sum int64
	for _, c := range blk {
		sum += int64(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

var mtime = time.Unix(1700000000, 0)

// TestFastHeader checks which header blocks fastHeader parses — plain
// USTAR headers of every type it takes, a long name in the prefix field —
// and that it returns what archive/tar does for them; and that it leaves
// every other block to archive/tar.
func TestFastHeader(t *testing.T) {
	ustar := func(h tar.Header) []byte {
		h.Format, h.ModTime = tar.FormatUSTAR, mtime
		return headerBlock(t, &h)
	}
	edit := func(blk []byte, f func(b []byte)) []byte {
		b := append([]byte{}, blk...)
		f(b)
		setChecksum(b)
		return b
	}
	file := ustar(tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Uid: 0, Gid: 42, Size: 1234})
	cases := []struct {
		name string
		blk  []byte
		fast bool
	}{
		{"file", file, true},
		{"dir", ustar(tar.Header{Typeflag: tar.TypeDir, Name: "usr/", Mode: 0o755}), true},
		{"symlink", ustar(tar.Header{Typeflag: tar.TypeSymlink, Name: "lib", Linkname: "usr/lib", Mode: 0o777}), true},
		{"hardlink", ustar(tar.Header{Typeflag: tar.TypeLink, Name: "b", Linkname: "a"}), true},
		{"char device", ustar(tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Devmajor: 1, Devminor: 3, Mode: 0o666}), true},
		{"block device", ustar(tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Devmajor: 8, Mode: 0o660}), true},
		{"fifo", ustar(tar.Header{Typeflag: tar.TypeFifo, Name: "run/fifo", Mode: 0o600}), true},
		{"long name in the prefix", ustar(tar.Header{Typeflag: tar.TypeReg, Name: strings.Repeat("d/", 60) + "file"}), true},
		{"owner names", ustar(tar.Header{Typeflag: tar.TypeReg, Name: "f", Uname: "root", Gname: "wheel"}), true},
		{"PAX header", headerBlock(t, &tar.Header{Typeflag: tar.TypeReg, Name: "f", ModTime: time.Unix(1, 5), Format: tar.FormatPAX}), false},
		{"GNU header", headerBlock(t, &tar.Header{Typeflag: tar.TypeReg, Name: "f", ModTime: mtime, Format: tar.FormatGNU}), false},
		{"old regular file type", edit(file, func(b []byte) { b[156] = 0 }), false},
		{"contiguous file type", edit(file, func(b []byte) { b[156] = tar.TypeCont }), false},
		{"non-ASCII name", edit(file, func(b []byte) { copy(b, "é") }), false},
		{"base-256 size", edit(file, func(b []byte) { copy(b[124:136], "\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00") }), false},
		{"size without NUL", edit(file, func(b []byte) { copy(b[124:136], "000000002322") }), false},
		{"space inside a number", edit(file, func(b []byte) { copy(b[100:108], "00 0644\x00") }), false},
		{"digit 8", edit(file, func(b []byte) { copy(b[100:108], "0000648\x00") }), false},
		{"bad checksum", func() []byte { b := append([]byte{}, file...); b[0]++; return b }(), false},
		{"star trailer", edit(file, func(b []byte) { copy(b[508:], "tar\x00") }), false},
		{"absolute name", edit(file, func(b []byte) { copy(b, "/etc/passwd") }), false},
		{"dot-dot name", edit(file, func(b []byte) { copy(b, "../etc/passwd") }), false},
		{"zero block", make([]byte, tarBlockSize), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := fastHeader(c.blk)
			if (got != nil) != c.fast {
				t.Fatalf("fastHeader parsed it: %v, want %v", got != nil, c.fast)
			}
			if got == nil {
				return
			}
			want, err := readByTar(c.blk)
			if err != nil {
				t.Fatalf("archive/tar: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("fastHeader: %+v\narchive/tar: %+v", got, want)
			}
		})
	}
}

// FuzzFastHeader: whatever block fastHeader parses, archive/tar reads
// without an error as the same header. With fix, the block's checksum is
// made valid, so that mutations reach the fields.
func FuzzFastHeader(f *testing.F) {
	for _, h := range []tar.Header{
		{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: 1234, ModTime: mtime, Format: tar.FormatUSTAR},
		{Typeflag: tar.TypeSymlink, Name: "lib", Linkname: "usr/lib", ModTime: mtime, Format: tar.FormatUSTAR},
		{Typeflag: tar.TypeChar, Name: "dev/null", Devmajor: 1, Devminor: 3, ModTime: mtime, Format: tar.FormatUSTAR},
		{Typeflag: tar.TypeReg, Name: strings.Repeat("d/", 60) + "file", ModTime: mtime, Format: tar.FormatUSTAR},
		{Typeflag: tar.TypeReg, Name: "f", ModTime: mtime, Format: tar.FormatGNU},
	} {
		f.Add(headerBlock(f, &h), false)
		f.Add(headerBlock(f, &h), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		blk := make([]byte, tarBlockSize)
		copy(blk, b)
		if fix {
			setChecksum(blk)
		}
		got := fastHeader(blk)
		if got == nil {
			return
		}
		want, err := readByTar(blk)
		if err != nil {
			t.Fatalf("fastHeader parsed a block archive/tar refuses (%v): %+v", err, got)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fastHeader: %+v\narchive/tar: %+v", got, want)
		}
	})
}

// TestTruncatedBerthAsStreamed cuts a tar at many points and unpacks each
// cut streamed (archive/tar reads every header) and framed as a berth
// image in frames that hold headers whole (fastHeader reads them) or not:
// each way must fail alike, naming the same entry — data cut short is an
// error, padding cut short the end of the archive — and, when it does
// not, write the same tree (directory times aside: those the tar does not
// list before the cut are made at unpack time).
func TestTruncatedBerthAsStreamed(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct {
		hdr  tar.Header
		data string
	}{
		{tar.Header{Typeflag: tar.TypeReg, Name: "a", Size: 100}, strings.Repeat("a", 100)},
		{tar.Header{Typeflag: tar.TypeDir, Name: "d/"}, ""},
		{tar.Header{Typeflag: tar.TypeSymlink, Name: "d/l", Linkname: "../a"}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: "d/b", Size: 5000}, strings.Repeat("b", 5000)},
		{tar.Header{Typeflag: tar.TypeLink, Name: "h", Linkname: "a"}, ""},
		{tar.Header{Typeflag: tar.TypeReg, Name: "a", Size: 10}, "repeated!!"},          // in order: read through the entry's data reader
		{tar.Header{Typeflag: 'Z', Name: "odd", Size: 3000}, strings.Repeat("z", 3000)}, // skipped, its data unread
		{tar.Header{Typeflag: tar.TypeReg, Name: "c", Size: 1}, "c"},
	} {
		e.hdr.Mode, e.hdr.ModTime, e.hdr.Format = 0o644, mtime, tar.FormatUSTAR
		if err := tw.WriteHeader(&e.hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.data))
	}
	tw.Close()
	whole := buf.Bytes()
	var cuts []int
	for n := 0; n <= len(whole); n += 97 {
		cuts = append(cuts, n)
	}
	for n := 0; n <= len(whole); n += tarBlockSize {
		cuts = append(cuts, n, n+100, n+10)
	}
	for _, n := range cuts {
		if n < tarBlockSize || n > len(whole) {
			continue // a plain tar needs one whole header to be recognised
		}
		raw := whole[:n]
		dir := t.TempDir()
		unpack := func(name string, b []byte) (string, map[string]node) {
			src := filepath.Join(dir, "image")
			if err := os.WriteFile(src, b, 0o644); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(dir, name)
			_, err := Unpack(src, dest, UnpackOptions{})
			if err != nil {
				// The entry named and the cause; the wording around them
				// differs between the streamed and the framed paths.
				msg := err.Error()
				_, name, _ := strings.Cut(msg, `"`)
				name, _, _ = strings.Cut(name, `"`)
				return name + ": " + msg[strings.LastIndex(msg, ": ")+2:], nil
			}
			tree := snapshot(t, dest)
			for k, n := range tree {
				if n.typ == unix.S_IFDIR { // made now, unless the tar lists them before the cut
					n.mtime = 0
					tree[k] = n
				}
			}
			return "", tree
		}
		wantErr, wantTree := unpack("streamed", raw)
		for _, frame := range []int{700, 64 << 10} {
			gotErr, gotTree := unpack(fmt.Sprint("framed", frame), berthFromTar(t, raw, frame))
			if gotErr != wantErr {
				t.Errorf("cut at %d, frames of %d: error %q, streamed %q", n, frame, gotErr, wantErr)
			} else if wantErr == "" && !reflect.DeepEqual(gotTree, wantTree) {
				t.Errorf("cut at %d, frames of %d: trees differ", n, frame)
			}
		}
	}
}
