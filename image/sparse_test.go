package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/mmapfs"
)

// sparseTar is a tar holding one sparse file in PAX format 1.0: its map
// block is mapText, its data data, its size realsize.
func sparseTar(t testing.TB, name string, realsize int64, mapText string, data []byte) []byte {
	t.Helper()
	block := append([]byte(mapText), make([]byte, (512-len(mapText)%512)%512)...)
	hdr := &tar.Header{Name: name, Size: realsize, Mode: 0o644, ModTime: time.Unix(1e9, 5)}
	h, err := sparseHeaders(hdr, int64(len(block)+len(data)))
	if err != nil {
		t.Fatal(err)
	}
	out := append(append(h, block...), data...)
	out = append(out, make([]byte, (512-len(out)%512)%512+1024)...)
	return out
}

// TestSparseUnpack unpacks sparse files in every mode: the holes stay
// holes, the limit counts the data (a 1 TiB file of one block passes a
// 1 MiB limit), and a map that disagrees with the data is refused.
func TestSparseUnpack(t *testing.T) {
	cases := []struct {
		name    string
		tar     []byte
		size    int64
		content map[int64]string // offset → bytes; zeros elsewhere
		err     string
	}{
		{"one block in 1 TiB", sparseTar(t, "disk", 1<<40, "1\n1099511627000\n5\n", []byte("data!")), 1 << 40,
			map[int64]string{1099511627000: "data!"}, ""},
		{"data, hole, data, hole", sparseTar(t, "f", 10000, "3\n0\n2\n5000\n3\n10000\n0\n", []byte("abxyz")), 10000,
			map[int64]string{0: "ab", 5000: "xyz"}, ""},
		{"map promises more than the entry holds", sparseTar(t, "f", 100, "1\n0\n50\n", []byte("short")), 0, nil,
			"the map holds"},
		{"map covers less than the entry holds", sparseTar(t, "f", 100, "1\n0\n2\n", []byte("longer")), 0, nil,
			"the map holds"},
	}
	for mode, m := range unpackModes {
		for _, c := range cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				dir := t.TempDir()
				arc := filepath.Join(dir, "sparse.tar")
				os.WriteFile(arc, c.tar, 0o644)
				dest := filepath.Join(dir, "dest")
				_, err := unpackMode(t, arc, dest, mode, UnpackOptions{Limits: Limits{MaxBytes: 1 << 20}})
				if c.err != "" {
					if err == nil || !strings.Contains(err.Error(), c.err) {
						t.Fatalf("error %v, want %q", err, c.err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				checkSparseFile(t, dest, c.size, c.content)
			})
		}
	}
}

// TestSparseLimitCountsBlocks: one-byte segments a block apart take a
// block each on disk, so the limit counts the blocks — 256 of them make
// 1 MiB, at a 1 MiB limit; 257 are over it — not the 256 bytes, which
// would let a few KB of image fill a disk.
func TestSparseLimitCountsBlocks(t *testing.T) {
	for mode, m := range unpackModes {
		for _, n := range []int{256, 257} {
			t.Run(fmt.Sprintf("%s/%d", m.name, n), func(t *testing.T) {
				mapText, data := spreadSegments(n)
				dir := t.TempDir()
				arc := filepath.Join(dir, "sparse.tar")
				os.WriteFile(arc, sparseTar(t, "f", int64(n)*4096, mapText, data), 0o644)
				_, err := unpackMode(t, arc, filepath.Join(dir, "dest"), mode, UnpackOptions{Limits: Limits{MaxBytes: 1 << 20}})
				if n == 256 && err != nil {
					t.Fatalf("at the limit: %v", err)
				}
				if n > 256 && (err == nil || !strings.Contains(err.Error(), "too much data")) {
					t.Fatalf("over the limit: %v", err)
				}
			})
		}
	}
}

// spreadSegments is the map of n one-byte segments, one at the start of
// each 4 KiB block, and their data.
func spreadSegments(n int) (mapText string, data []byte) {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", n)
	for i := range n {
		fmt.Fprintf(&b, "%d\n1\n", i*4096)
		data = append(data, 'x')
	}
	return b.String(), data
}

// checkSparseFile checks the one file in dest: its size, its bytes at the
// given offsets, zeros around them, and that its holes take no blocks.
func checkSparseFile(t *testing.T, dest string, size int64, content map[int64]string) {
	t.Helper()
	ents, err := os.ReadDir(dest)
	if err != nil || len(ents) != 1 {
		t.Fatalf("dest holds %v (%v)", ents, err)
	}
	p := filepath.Join(dest, ents[0].Name())
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	var data int64
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off, want := range content {
		got := make([]byte, len(want))
		f.ReadAt(got, off)
		if string(got) != want {
			t.Errorf("at %d: %q, want %q", off, got, want)
		}
		for _, z := range []int64{off - 1, off + int64(len(want))} {
			b := []byte{1}
			if _, err := f.ReadAt(b, z); z >= 0 && z < size && (err != nil || b[0] != 0) {
				t.Errorf("at %d: %q (%v), want a zero", z, b, err)
			}
		}
		data += int64(len(want))
	}
	if st.Size != size || st.Blocks*512 > data+64<<10 {
		t.Errorf("size %d (want %d), %d bytes allocated for %d of data", st.Size, size, st.Blocks*512, data)
	}
}

// TestSparseHeaders checks berth's sparse headers as archive/tar reads
// them: the name, size, time and data, holes as zeros.
func TestSparseHeaders(t *testing.T) {
	segs := []mmapfs.Segment{{Off: 3, Len: 2}, {Off: 700, Len: 4}, {Off: 1000, Len: 0}}
	b := sparseTar(t, strings.Repeat("long/", 30)+"name", 1000, string(mmapfs.AppendSparseMap(nil, segs)), []byte("abwxyz"))
	tr := tar.NewReader(bytes.NewReader(b))
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Name != strings.Repeat("long/", 30)+"name" || hdr.Size != 1000 || !hdr.ModTime.Equal(time.Unix(1e9, 5)) || hdr.Mode != 0o644 {
		t.Errorf("header %+v", hdr)
	}
	want := make([]byte, 1000)
	copy(want[3:], "ab")
	copy(want[700:], "wxyz")
	var got bytes.Buffer
	if _, err := got.ReadFrom(tr); err != nil || !bytes.Equal(got.Bytes(), want) {
		t.Errorf("data %v: %q", err, got.Bytes())
	}
}

// TestSparseDisk: a sparse file counts each 4 KiB block its segments
// touch once, however finely they cut it.
func TestSparseDisk(t *testing.T) {
	for _, c := range []struct {
		segs []mmapfs.Segment
		want int64
	}{
		{[]mmapfs.Segment{{Off: 0, Len: 1}}, 4096},
		{[]mmapfs.Segment{{Off: 0, Len: 4096}}, 4096},
		{[]mmapfs.Segment{{Off: 0, Len: 4097}}, 8192},
		{[]mmapfs.Segment{{Off: 4095, Len: 2}}, 8192},
		{[]mmapfs.Segment{{Off: 0, Len: 512}, {Off: 1024, Len: 512}, {Off: 2048, Len: 512}, {Off: 3072, Len: 512}}, 4096},
		{[]mmapfs.Segment{{Off: 0, Len: 2048}, {Off: 2048, Len: 2048}}, 4096},
		{[]mmapfs.Segment{{Off: 0, Len: 1}, {Off: 4096, Len: 1}, {Off: 1 << 40, Len: 0}}, 8192},
	} {
		if got := (&sparseLayout{segs: c.segs}).disk(); got != c.want {
			t.Errorf("%v: %d bytes, want %d", c.segs, got, c.want)
		}
	}
}
