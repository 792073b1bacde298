package image

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"berth/mmapfs"

	"github.com/klauspost/compress/zstd"
)

// TestSeekTable reads a multi-frame image's seek table by the spec, not
// with mmapfs.ParseSeekTable: the frames and the table must add up to the file,
// with the berth index frame in between, and each frame must decode on its own to its listed size and checksum.
// Their concatenation must be what `zstd -d` gives.
func TestSeekTable(t *testing.T) {
	_, img := packTree(t)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	footer := b[len(b)-9:]
	n := int(le.Uint32(footer))
	if footer[4] != 0x80 || le.Uint32(footer[5:]) != 0x8F92EAB1 {
		t.Fatalf("footer % x", footer)
	}
	if n <= 3 {
		t.Fatalf("%d frames, want > 3", n)
	}
	tableLen := 8 + n*12 + 9
	table := b[len(b)-tableLen:]
	if le.Uint32(table) != 0x184D2A5E || int(le.Uint32(table[4:])) != n*12+9 {
		t.Fatalf("seek table frame header % x", table[:8])
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var off int
	var joined []byte
	for i := range n {
		e := table[8+12*i:]
		csize, dsize, sum := int(le.Uint32(e)), int(le.Uint32(e[4:])), le.Uint32(e[8:])
		frame := b[off : off+csize]
		out, err := dec.DecodeAll(frame, nil) // verifies the content checksum too
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(out) != dsize {
			t.Errorf("frame %d: %d bytes, table says %d", i, len(out), dsize)
		}
		if i < n-1 && dsize < testFrameSize {
			t.Errorf("frame %d: %d bytes, under the frame size", i, dsize)
		}
		if got := le.Uint32(frame[len(frame)-4:]); got != sum {
			t.Errorf("frame %d: content checksum %08x, table %08x", i, got, sum)
		}
		joined = append(joined, out...)
		off += csize
	}
	// Between the frames and the table: skippable frames, one of them the
	// berth index.
	index := false
	for off < len(b)-tableLen {
		magic, size := le.Uint32(b[off:]), int(le.Uint32(b[off+4:]))
		if magic&0xFFFFFFF0 != 0x184D2A50 {
			t.Fatalf("offset %d: magic %#x is not a skippable frame", off, magic)
		}
		index = index || magic == 0x184D2A5B
		off += 8 + size
	}
	if off != len(b)-tableLen || !index {
		t.Errorf("frames and skippable frames end at %d, table is %d bytes, file is %d; index found: %v", off, tableLen, len(b), index)
	}
	plain, err := exec.Command("zstd", "-q", "-d", "-c", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, joined) {
		t.Error("frames decoded one by one differ from zstd -d")
	}
}

// TestSeekTableWithIndexFrame inserts a skippable frame between the data
// and the seek table, where the later berth index will go: berth and zstd
// must still read the image.
func TestSeekTableWithIndexFrame(t *testing.T) {
	want, img := packTree(t)
	b, _ := os.ReadFile(img)
	st, err := mmapfs.ParseSeekTable(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	extra := binary.LittleEndian.AppendUint32(nil, 0x184D2A5B)
	extra = binary.LittleEndian.AppendUint32(extra, 5)
	extra = append(extra, "index"...)
	var out []byte
	out = append(out, b[:st.DataEnd]...)
	out = append(out, extra...)
	out = append(out, b[st.TableStart:]...)
	withIndex := filepath.Join(t.TempDir(), "indexed.tar.zst")
	os.WriteFile(withIndex, out, 0o644)

	dest := filepath.Join(t.TempDir(), "dest")
	stats, err := Unpack(withIndex, dest, UnpackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Format != FormatBerth {
		t.Errorf("format %q, want berth", stats.Format)
	}
	compareTrees(t, want, snapshot(t, dest))
	run(t, "zstd", "-q", "-t", withIndex)
}

// TestParseSeekTableRejects feeds broken tables to the parser.
func TestParseSeekTableRejects(t *testing.T) {
	le := binary.LittleEndian
	frame := []byte{0x28, 0xB5, 0x2F, 0xFD, 0, 0, 0, 0}
	good := append(append([]byte{}, frame...), mmapfs.AppendSeekTable(nil, []mmapfs.Frame{{CSize: 8, DSize: 0}})...)
	if _, err := mmapfs.ParseSeekTable(bytes.NewReader(good), int64(len(good))); err != nil {
		t.Fatalf("good table refused: %v", err)
	}
	mutate := func(f func(b []byte) []byte) []byte {
		return f(append([]byte{}, good...))
	}
	cases := map[string][]byte{
		"empty":          {},
		"no magic":       mutate(func(b []byte) []byte { b[len(b)-1] = 0; return b }),
		"reserved bits":  mutate(func(b []byte) []byte { b[len(b)-5] |= 0x04; return b }),
		"huge count":     mutate(func(b []byte) []byte { le.PutUint32(b[len(b)-9:], 1<<31); return b }),
		"frame overruns": mutate(func(b []byte) []byte { le.PutUint32(b[16:], 9); return b }),
		"zero frame":     mutate(func(b []byte) []byte { le.PutUint32(b[16:], 0); return b }),
		"bad header":     mutate(func(b []byte) []byte { b[8] = 0; return b }),
		"junk in gap":    append(append(append([]byte{}, frame...), 1, 2, 3, 4, 5, 6, 7, 8), mmapfs.AppendSeekTable(nil, []mmapfs.Frame{{CSize: 8}})...),
	}
	for name, b := range cases {
		if _, err := mmapfs.ParseSeekTable(bytes.NewReader(b), int64(len(b))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
