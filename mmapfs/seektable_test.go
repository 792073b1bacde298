package mmapfs

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
)

// sparseImage is a file of size bytes that is zeros except for tail at its
// end: a huge hostile image without the disk it would take.
type sparseImage struct {
	size int64
	tail []byte
}

func (s sparseImage) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), s.size-off))
	clear(p[:n])
	if start := s.size - int64(len(s.tail)); off+int64(n) > start {
		from := max(off, start)
		copy(p[from-off:n], s.tail[from-start:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestSeekTableBounds feeds tables whose counts would make the parser
// allocate without bound: refused, naming the limit.
func TestSeekTableBounds(t *testing.T) {
	le := binary.LittleEndian
	footer := func(n uint32) []byte {
		b := le.AppendUint32(nil, n)
		b = append(b, seekTableChecksumBit)
		return le.AppendUint32(b, SeekableFooterMagic)
	}
	// Skippable frames of no payload, one more than allowed, before an
	// empty table.
	var skips []byte
	for range maxSkippable + 1 {
		skips = le.AppendUint32(skips, SkippableMagicBase)
		skips = le.AppendUint32(skips, 0)
	}
	manySkips := AppendSeekTable(skips, nil)
	cases := []struct {
		name string
		r    io.ReaderAt
		size int64
		want string
	}{
		{"frames over the limit", sparseImage{size: 1 << 40, tail: footer(maxSeekFrames + 1)}, 1 << 40, "over the limit"},
		{"frames past the file", sparseImage{size: 1 << 20, tail: footer(1 << 20)}, 1 << 20, "do not fit"},
		{"skippable frames over the limit", bytes.NewReader(manySkips), int64(len(manySkips)), "skippable frames"},
	}
	for _, c := range cases {
		_, err := ParseSeekTable(c.r, c.size)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	ok := AppendSeekTable(skips[:8*maxSkippable], nil)
	st, err := ParseSeekTable(bytes.NewReader(ok), int64(len(ok)))
	if err != nil || len(st.Skippable) != maxSkippable {
		t.Errorf("%d skippable frames: %v", maxSkippable, err)
	}
}
