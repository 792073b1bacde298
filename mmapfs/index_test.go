package mmapfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// sampleItems is a small tree in arbitrary order, with an implicit parent.
func sampleItems() []IndexItem {
	return []IndexItem{
		{Path: ".", Entry: Entry{Type: TypeDir, Mode: 0o755}},
		{Path: "usr/bin/env", Entry: Entry{Type: TypeReg, Mode: 0o755, Size: 10, Frame: 1, Offset: 512, MTime: 1700000000}},
		{Path: "bin", Entry: Entry{Type: TypeSymlink, Mode: 0o777, Link: "usr/bin"}},
	}
}

// TestIndexRoundTrip builds, encodes and parses an index.
func TestIndexRoundTrip(t *testing.T) {
	items := append(sampleItems(),
		IndexItem{Path: "dev/null", Entry: Entry{Type: TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}},
		IndexItem{Path: "usr/bin/printenv", Entry: Entry{Type: TypeLink, Link: "usr/bin/env"}},
		IndexItem{Path: "usr/bin/env", Entry: Entry{Type: TypeReg, Mode: 0o4755, Size: 11, UID: 1, GID: 2}}, // replaces
	)
	ix, err := BuildIndex(items, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for i := range ix.Entries {
		paths = append(paths, ix.Path(i))
	}
	want := []string{".", "bin", "dev", "usr", "dev/null", "usr/bin", "usr/bin/env", "usr/bin/printenv"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("order %q, want %q", paths, want)
	}
	if e := ix.Entries[3]; !e.Implicit || e.Type != TypeDir || e.Mode != 0o755 {
		t.Errorf("usr: %+v, want an implicit directory", e)
	}
	frame := AppendIndexFrame(nil, ix)
	if binary.LittleEndian.Uint32(frame) != IndexFrameMagic || int(binary.LittleEndian.Uint32(frame[4:])) != len(frame)-8 {
		t.Fatalf("frame header % x", frame[:8])
	}
	back, err := ParseIndex(frame[8:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ix) {
		t.Errorf("parsed index differs:\n%+v\n%+v", back, ix)
	}
	if j := back.Lookup(back.Lookup(back.Lookup(0, "usr"), "bin"), "env"); j < 0 || back.Entries[j].Size != 11 || back.Entries[j].Mode != 0o4755 {
		t.Errorf("lookup usr/bin/env: %d", j)
	}
	if lo, hi := back.Children(0); hi-lo != 3 {
		t.Errorf("root has %d children, want 3", hi-lo)
	}
}

// TestBuildIndexRejects refuses paths that cannot be a tree.
func TestBuildIndexRejects(t *testing.T) {
	cases := map[string][]IndexItem{
		"unclean path":       {{Path: "a//b", Entry: Entry{Type: TypeReg}}},
		"absolute path":      {{Path: "/a", Entry: Entry{Type: TypeReg}}},
		"dotdot":             {{Path: "../a", Entry: Entry{Type: TypeReg}}},
		"root not a dir":     {{Path: ".", Entry: Entry{Type: TypeReg}}},
		"under a file":       {{Path: "a", Entry: Entry{Type: TypeReg}}, {Path: "a/b", Entry: Entry{Type: TypeReg}}},
		"dir becomes a file": {{Path: "a/b", Entry: Entry{Type: TypeReg}}, {Path: "a", Entry: Entry{Type: TypeReg}}},
	}
	for name, items := range cases {
		if _, err := BuildIndex(items, 0); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestParseIndexRejects damages an encoded index field by field.
func TestParseIndexRejects(t *testing.T) {
	ix, err := BuildIndex(sampleItems(), 4096)
	if err != nil {
		t.Fatal(err)
	}
	good := AppendIndexFrame(nil, ix)[8:]
	le := binary.LittleEndian
	rec := func(i int) int { return indexHeader + i*indexRecord }
	cases := map[string]func(b []byte){
		"magic":              func(b []byte) { b[0] = 'X' },
		"version":            func(b []byte) { le.PutUint16(b[4:], 3) },
		"flags":              func(b []byte) { le.PutUint16(b[6:], 1) },
		"count":              func(b []byte) { le.PutUint32(b[8:], 1000) },
		"parent after":       func(b []byte) { le.PutUint32(b[rec(1)+16:], 3) },
		"parent not a dir":   func(b []byte) { le.PutUint32(b[rec(4)+16:], 1) },
		"type":               func(b []byte) { b[rec(1)+51] = 9 },
		"mode":               func(b []byte) { le.PutUint32(b[rec(1)+28:], 0o10000) },
		"name outside":       func(b []byte) { le.PutUint32(b[rec(1)+20:], 1<<30) },
		"order":              func(b []byte) { b[rec(1)+51], b[rec(2)+51] = b[rec(2)+51], b[rec(1)+51] },
		"root not root":      func(b []byte) { b[rec(0)+51] = byte(TypeReg) },
		"size on a symlink":  func(b []byte) { le.PutUint64(b[rec(1):], 5) },
		"nanoseconds":        func(b []byte) { le.PutUint32(b[rec(1)+52:], 1e9) },
		"sparse symlink":     func(b []byte) { b[rec(1)+51] |= flagSparse; le.PutUint64(b[rec(1)+56:], 512) },
		"stored, not sparse": func(b []byte) { le.PutUint64(b[rec(4)+56:], 512) },
		"sparse, no map":     func(b []byte) { b[rec(4)+51] |= flagSparse; le.PutUint64(b[rec(4)+56:], 100) },
	}
	for name, damage := range cases {
		b := append([]byte{}, good...)
		damage(b)
		if name != "magic" && name != "version" && name != "flags" && name != "count" {
			le.PutUint32(b[len(b)-4:], crc(b[:len(b)-4])) // past the checksum
		}
		if _, err := ParseIndex(b); !errors.Is(err, ErrIndex) {
			t.Errorf("%s: %v, want ErrIndex", name, err)
		}
	}
	// No entries, names making up a record's length (found by FuzzIndex:
	// it parsed, and re-encoded to an index refused as too short).
	empty := append([]byte{}, good[:indexHeader]...)
	le.PutUint32(empty[8:], 0)
	le.PutUint32(empty[12:], indexRecord)
	empty = append(empty, make([]byte, indexRecord+indexTrailer)...)
	le.PutUint32(empty[len(empty)-4:], crc(empty[:len(empty)-4]))
	if _, err := ParseIndex(empty); !errors.Is(err, ErrIndex) || !strings.Contains(err.Error(), "no entries") {
		t.Errorf("an index of no entries: %v, want ErrIndex, no entries", err)
	}
	bad := append([]byte{}, good...)
	bad[len(bad)-10] ^= 1
	if _, err := ParseIndex(bad); err == nil {
		t.Error("checksum mismatch accepted")
	}
}

func crc(b []byte) uint32 { return crc32c(b) }

// TestFrameCache bounds the decoded bytes kept and decodes a frame once
// for concurrent readers.
func TestFrameCache(t *testing.T) {
	c := newFrameCache(3 * 100)
	var decodes atomic.Int32
	get := func(i int) []byte {
		b, err := c.get(i, func() ([]byte, error) {
			decodes.Add(1)
			return make([]byte, 100), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { get(0) })
	}
	wg.Wait()
	if decodes.Load() != 1 {
		t.Errorf("%d decodes of one frame", decodes.Load())
	}
	for i := range 10 {
		get(i)
		if c.used > c.budget {
			t.Fatalf("cache holds %d bytes over its %d budget", c.used, c.budget)
		}
	}
	if _, err := c.get(99, func() ([]byte, error) { return nil, fmt.Errorf("broken") }); err == nil {
		t.Error("error not returned")
	}
	if _, ok := c.frames[99]; ok {
		t.Error("error cached")
	}
}

// TestFrameAt maps stream offsets to frames, skipping empty ones.
func TestFrameAt(t *testing.T) {
	st := &SeekTable{Frames: []Frame{{DSize: 10}, {DSize: 0}, {DSize: 5}}, Starts: []int64{0, 10, 10}, Size: 15}
	for off, want := range map[int64]int{0: 0, 9: 0, 10: 2, 14: 2, 15: -1, -1: -1} {
		if got := st.FrameAt(off); got != want {
			t.Errorf("FrameAt(%d) = %d, want %d", off, got, want)
		}
	}
}

// v1Payload rewrites a current index payload in version 1's layout:
// 52-byte records, without nanoseconds and stored sizes.
func v1Payload(t *testing.T, p []byte) []byte {
	t.Helper()
	le := binary.LittleEndian
	n, strLen := int(le.Uint32(p[8:])), int(le.Uint32(p[12:]))
	out := append([]byte{}, p[:indexHeader]...)
	le.PutUint16(out[4:], 1)
	for i := range n {
		r := p[indexHeader+i*indexRecord:][:indexRecord]
		if le.Uint32(r[52:]) != 0 || le.Uint64(r[56:]) != 0 {
			t.Fatalf("entry %d needs version 2", i)
		}
		out = append(out, r[:indexRecordV1]...)
	}
	out = append(out, p[indexHeader+n*indexRecord:][:strLen]...)
	return le.AppendUint32(out, crc32c(out))
}

// TestIndexVersions parses an index written in version 1 (images packed
// before version 2) and in version 2, with nanoseconds and a sparse file.
func TestIndexVersions(t *testing.T) {
	ix, err := BuildIndex(sampleItems(), 4096)
	if err != nil {
		t.Fatal(err)
	}
	old, err := ParseIndex(v1Payload(t, AppendIndexFrame(nil, ix)[8:]))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(old, ix) {
		t.Errorf("version 1 parses differently:\n%+v\n%+v", old, ix)
	}
	items := append(sampleItems(), IndexItem{Path: "var/disk.img", Entry: Entry{
		Type: TypeReg, Mode: 0o600, Size: 100 << 20, Sparse: true, Stored: 512 + 4096, MTime: 1, MTimeNs: 999999999}})
	ix, err = BuildIndex(items, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseIndex(AppendIndexFrame(nil, ix)[8:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ix) {
		t.Errorf("version 2 parses differently:\n%+v\n%+v", back, ix)
	}
	if e := back.Entries[back.Lookup(back.Lookup(0, "var"), "disk.img")]; e.StreamBytes() != 512+4096 || e.MTimeNs != 999999999 {
		t.Errorf("sparse entry %+v", e)
	}
}

// TestSparseMap parses map blocks as GNU tar writes them, and refuses
// what archive/tar refuses.
func TestSparseMap(t *testing.T) {
	gnu := "3\n49999872\n4096\n89997312\n4096\n104857600\n0\n" // tar -S --format=posix of a 100 MB file
	block := func(s string) []byte { return append([]byte(s), make([]byte, (512-len(s)%512)%512)...) }
	good := []Segment{{49999872, 4096}, {89997312, 4096}, {104857600, 0}}
	if got := AppendSparseMap(nil, good); !bytes.Equal(got, block(gnu)) {
		t.Errorf("AppendSparseMap = %q", got)
	}
	long := make([]Segment, 100)
	for i := range long {
		long[i] = Segment{Off: int64(i) * 1e9, Len: 4096}
	}
	cases := []struct {
		name string
		b    []byte
		size int64
		want []Segment
		len  int
		err  error // nil: accepted; ErrSparseShort; or any error (errSparseMap)
	}{
		{"gnu tar", block(gnu), 104857600, good, 512, nil},
		{"no segments", block("0\n"), 10, []Segment{}, 512, nil},
		{"several blocks", AppendSparseMap(nil, long), 100e9, long, 2048, nil},
		{"truncated block", []byte(gnu), 104857600, nil, 0, ErrSparseShort},
		{"truncated line", []byte("3\n4999"), 104857600, nil, 0, ErrSparseShort},
		{"past the size", block(gnu), 104857599, nil, 0, errSparseMap},
		{"overlap", block("2\n0\n10\n5\n10\n"), 100, nil, 0, errSparseMap},
		{"out of order", block("2\n50\n10\n0\n10\n"), 100, nil, 0, errSparseMap},
		{"negative", block("1\n-1\n10\n"), 100, nil, 0, errSparseMap},
		{"not a number", block("1\nx\n10\n"), 100, nil, 0, errSparseMap},
		{"huge count", block("9999999999\n"), 100, nil, 0, errSparseMap},
		{"too long", bytes.Repeat([]byte("7"), MaxSparseMap+1), 100, nil, 0, errSparseMap},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			segs, n, err := ParseSparseMap(c.b, c.size)
			switch {
			case c.err == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case c.err == ErrSparseShort && err != ErrSparseShort:
				t.Fatalf("error %v, want ErrSparseShort", err)
			case c.err == errSparseMap && !errors.Is(err, errSparseMap):
				t.Fatalf("error %v, want a bad map", err)
			case c.err == nil && (!reflect.DeepEqual(segs, c.want) || n != c.len):
				t.Errorf("got %v, %d; want %v, %d", segs, n, c.want, c.len)
			}
		})
	}
}
