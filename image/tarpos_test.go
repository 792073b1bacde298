package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// typedBlock is the ustar block of hdr as archive/tar writes it, then
// given typeflag typ: archive/tar will not write a directory with a size.
func typedBlock(t *testing.T, hdr *tar.Header, typ byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()[:512]
	b[156] = typ
	var sum int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// TestHeaderOnlyEntryWithSize: a directory whose size field says 512 has
// no data (archive/tar reads none), so the next header starts right after
// it. A sparse file there is found where it is: its PAX record here holds
// what would pass for a header claiming 1100 bytes of extended header,
// read as one when berth took the directory's size for data; that read
// ran past the headers and panicked. Now it unpacks, in every mode.
func TestHeaderOnlyEntryWithSize(t *testing.T) {
	dirBlock := typedBlock(t, &tar.Header{Name: "d", Typeflag: tar.TypeReg, Size: 512, Mode: 0o755, ModTime: time.Unix(1e9, 0)}, tar.TypeDir)
	// The comment's value lies where sparseOf read the block at 512 as a
	// header: its size field (124..135) and typeflag (156).
	comment := []byte(strings.Repeat("a", 300))
	build := func() []byte {
		hdr := &tar.Header{Name: "f", Size: 1, Mode: 0o644, ModTime: time.Unix(1e9, 0), PAXRecords: map[string]string{"comment": string(comment)}}
		h, err := sparseHeaders(hdr, 512+1)
		if err != nil {
			t.Fatal(err)
		}
		block := append([]byte("1\n0\n1\n"), make([]byte, 512-6)...)
		out := append(append(append(append([]byte{}, dirBlock...), h...), block...), 'x')
		return append(out, make([]byte, (512-len(out)%512)%512+1024)...)
	}
	raw := build()
	at := bytes.Index(raw[1024:], []byte("comment=")) + len("comment=")
	if at < len("comment=") || at > 124 {
		t.Fatalf("comment's value at %d of the PAX data", at)
	}
	copy(comment[124-at:], "00000002114 ")
	comment[156-at] = tar.TypeXHeader
	raw = build()

	for mode, m := range unpackModes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			arc := filepath.Join(dir, "a.tar")
			if err := os.WriteFile(arc, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(dir, "dest")
			if _, err := unpackMode(t, arc, dest, mode, UnpackOptions{}); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(dest, "f")); err != nil || string(b) != "x" {
				t.Errorf("f: %v %q", err, b)
			}
			if fi, err := os.Stat(filepath.Join(dest, "d")); err != nil || !fi.IsDir() {
				t.Errorf("d: %v", err)
			}
		})
	}
}

// TestMainHeaderBounds: an extended header whose size runs past the
// headers read is an error, never a read past them.
func TestMainHeaderBounds(t *testing.T) {
	for _, size := range []string{"00000002114", "00000002001", "77777777777"} {
		raw := make([]byte, 3*512)
		raw[156] = tar.TypeXHeader
		copy(raw[124:], size)
		if _, _, err := mainHeader(raw); err == nil {
			t.Errorf("size %s in %d bytes: no error", size, len(raw))
		}
	}
}

// TestKeptStringsAreCopies: archive/tar cuts an entry's name and records
// from its PAX block, a megabyte at most. What an unpack keeps until its
// end — the names seen, the directories' names and xattrs, a layer's
// directory headers — must be copies: one short name or record sharing
// the block's memory keeps all of it, so a few compressed bytes per entry
// could hold gigabytes.
func TestKeptStringsAreCopies(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	name := strings.Repeat("n", 120) // too long for ustar: a PAX path record
	err := tw.WriteHeader(&tar.Header{Name: name, Linkname: name + "l", Uname: name + "u", Gname: name + "g",
		Typeflag: tar.TypeSymlink, Format: tar.FormatPAX,
		PAXRecords: map[string]string{"comment": strings.Repeat("c", 4096), "SCHILY.xattr.user.a": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	hdr, err := tar.NewReader(&buf).Next()
	if err != nil {
		t.Fatal(err)
	}
	if !aliases(hdr.Name[1:], hdr.Name) {
		t.Fatal("the test cannot tell a copy")
	}
	check := func(what, s, of string) {
		if aliases(s, of) {
			t.Errorf("%s shares the memory of %q...", what, of[:min(len(of), 20)])
		}
	}
	rel, err := entryPath(hdr.Name)
	if err != nil {
		t.Fatal(err)
	}
	check("entryPath", rel, hdr.Name)
	kept := xattrRecords(hdr)
	if len(kept) != 1 {
		t.Fatalf("xattrs %q", kept)
	}
	for k, v := range kept {
		for ok, ov := range hdr.PAXRecords {
			check("an xattr's key", k, ok)
			check("an xattr's value", v, ov)
		}
	}
	h := cloneHeader(hdr)
	check("the cloned header's name", h.Name, hdr.Name)
	check("the cloned header's link", h.Linkname, hdr.Linkname)
	check("the cloned header's user", h.Uname, hdr.Uname)
	check("the cloned header's group", h.Gname, hdr.Gname)
	for k, v := range h.PAXRecords {
		for ok, ov := range hdr.PAXRecords {
			check("a cloned record's key", k, ok)
			check("a cloned record's value", v, ov)
		}
	}
}

// aliases reports whether s lies in the memory of of.
func aliases(s, of string) bool {
	if s == "" || of == "" {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(of)))
	return p >= lo && p < lo+uintptr(len(of))
}

// TestLayerAfterSparse: in a layer, the header after a sparse file starts
// where the file's stored data ends, not where its size would put it. A
// file of 16 MiB storing 2 MiB (more than a header may take) is followed
// by another entry, which unpacks; a chain of headers there over the
// limit is still refused.
func TestLayerAfterSparse(t *testing.T) {
	data := bytes.Repeat([]byte("z"), 2<<20)
	sparse := sparseTar(t, "big", 16<<20, "1\n0\n2097152\n", data)
	sparse = sparse[:len(sparse)-1024] // its end blocks: another entry follows
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "c", Typeflag: tar.TypeReg, Mode: 0o644, PAXRecords: map[string]string{"comment": strings.Repeat("c", 400)}})
	tw.Close()
	var chain []byte
	for range 40 { // 40 KiB of PAX headers, each an x block and its record
		chain = append(chain, buf.Bytes()[:1024]...)
	}
	for _, tc := range []struct {
		name, err string
		before    []byte
	}{{"an entry", "", nil}, {"a chain of headers", "header too large: over the limit of 16384", chain}} {
		t.Run(tc.name, func(t *testing.T) {
			raw := append(append(append([]byte{}, sparse...), tc.before...), tarBytes(t, []entry{{name: "after", typ: regT, data: "y"}})...)
			layout := filepath.Join(t.TempDir(), "layout")
			writeLayout(t, layout, []testImage{{ref: "t", arch: runtime.GOARCH, raw: [][]byte{raw}, compress: "zstd"}}, false)
			dest := filepath.Join(t.TempDir(), "dest")
			_, err := Unpack(layout, dest, UnpackOptions{Limits: Limits{MaxHeaderBytes: 16 << 10}})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(dest, "after")); err != nil || string(b) != "y" {
				t.Errorf("after: %v %q", err, b)
			}
			f, err := os.Open(filepath.Join(dest, "big"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got := make([]byte, len(data)+1)
			if fi, _ := f.Stat(); fi.Size() != 16<<20 {
				t.Errorf("big: %d bytes", fi.Size())
			}
			if n, _ := f.ReadAt(got, 0); n != len(got) || !bytes.Equal(got[:len(data)], data) || got[len(data)] != 0 {
				t.Errorf("big: its data not where the map puts it")
			}
		})
	}
}
