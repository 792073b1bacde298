package mmapfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Magic numbers of the zstd seekable format and of berth's index frame. The
// byte-by-byte layout is documented in package berth/image.
const (
	ZstdFrameMagic      = 0xFD2FB528
	SkippableMagicMask  = 0xFFFFFFF0
	SkippableMagicBase  = 0x184D2A50
	SeekTableFrameMagic = 0x184D2A5E
	SeekableFooterMagic = 0x8F92EAB1
	IndexFrameMagic     = 0x184D2A5B

	seekTableFooterSize  = 9
	seekTableEntrySize   = 12 // with checksums
	seekTableEntryNoSum  = 8
	seekTableChecksumBit = 0x80
	seekTableReserved    = 0x7C
)

// Frame describes one data frame in the seek table.
type Frame struct {
	CSize    uint32 // bytes of the frame in the file
	DSize    uint32 // bytes it decompresses to
	Checksum uint32 // low 32 bits of XXH64 of the decompressed bytes
}

// Skippable is a skippable frame found between the data frames and the
// seek table.
type Skippable struct {
	Magic   uint32
	Payload [2]int64 // [start, end) of the payload in the file
}

// SeekTable is a parsed seek table with derived offsets.
type SeekTable struct {
	Frames       []Frame
	Offsets      []int64 // file offset of each data frame
	Starts       []int64 // offset of each frame's first byte in the decompressed stream
	Size         int64   // length of the decompressed stream
	HasChecksums bool
	DataEnd      int64 // end of the last data frame
	TableStart   int64 // offset of the seek table frame
	Skippable    []Skippable
}

// ErrNoSeekTable is returned for input that does not end in a seek table.
var ErrNoSeekTable = errors.New("no zstd seek table at the end of the file")

// AppendSeekTable appends the seek table skippable frame for frames, with
// checksums, to dst.
func AppendSeekTable(dst []byte, frames []Frame) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, SeekTableFrameMagic)
	dst = le.AppendUint32(dst, uint32(len(frames)*seekTableEntrySize+seekTableFooterSize))
	for _, f := range frames {
		dst = le.AppendUint32(dst, f.CSize)
		dst = le.AppendUint32(dst, f.DSize)
		dst = le.AppendUint32(dst, f.Checksum)
	}
	dst = le.AppendUint32(dst, uint32(len(frames)))
	dst = append(dst, seekTableChecksumBit)
	return le.AppendUint32(dst, SeekableFooterMagic)
}

// HasSeekTable reports whether b ends in the seekable format's footer magic.
func HasSeekTable(b []byte) bool {
	return len(b) >= seekTableFooterSize && binary.LittleEndian.Uint32(b[len(b)-4:]) == SeekableFooterMagic
}

// ParseSeekTable reads the seek table at the end of image b and checks that
// it describes the file exactly: the data frames start at offset 0, their
// compressed sizes end at or before the seek table, and only skippable
// frames lie in between. Reading b may fault if it is a mapping: call it
// under Guard.
func ParseSeekTable(b []byte) (*SeekTable, error) {
	le := binary.LittleEndian
	size := uint64(len(b))
	if size < 8+seekTableFooterSize || !HasSeekTable(b) {
		return nil, ErrNoSeekTable
	}
	footer := b[size-seekTableFooterSize:]
	n := uint64(le.Uint32(footer))
	desc := footer[4]
	if desc&seekTableReserved != 0 {
		return nil, fmt.Errorf("seek table: reserved descriptor bits set (%#x)", desc)
	}
	st := &SeekTable{HasChecksums: desc&seekTableChecksumBit != 0}
	entrySize := uint64(seekTableEntryNoSum)
	if st.HasChecksums {
		entrySize = seekTableEntrySize
	}
	payload := n*entrySize + seekTableFooterSize
	if payload+8 > size {
		return nil, fmt.Errorf("seek table: %d frames do not fit in a %d-byte file", n, size)
	}
	tableStart := size - payload - 8
	head := b[tableStart:]
	if le.Uint32(head) != SeekTableFrameMagic || uint64(le.Uint32(head[4:])) != payload {
		return nil, fmt.Errorf("seek table: bad frame header at offset %d", tableStart)
	}
	st.TableStart = int64(tableStart)
	st.Frames = make([]Frame, n)
	st.Offsets = make([]int64, n)
	st.Starts = make([]int64, n)
	var off, dsum uint64
	entries := head[8:]
	for i := range st.Frames {
		e := entries[uint64(i)*entrySize:]
		f := Frame{CSize: le.Uint32(e), DSize: le.Uint32(e[4:])}
		if st.HasChecksums {
			f.Checksum = le.Uint32(e[8:])
		}
		if f.CSize == 0 {
			return nil, fmt.Errorf("seek table: frame %d has size 0", i)
		}
		st.Frames[i] = f
		st.Offsets[i] = int64(off)
		st.Starts[i] = int64(dsum)
		off += uint64(f.CSize)
		dsum += uint64(f.DSize)
		if off > tableStart {
			return nil, fmt.Errorf("seek table: frame %d ends at %d, past the table at %d", i, off, tableStart)
		}
	}
	st.DataEnd, st.Size = int64(off), int64(dsum)
	skip, err := skippableRun(b[off:tableStart], off)
	if err != nil {
		return nil, err
	}
	st.Skippable = skip
	return st, nil
}

// skippableRun requires gap (which starts at file offset base) to be a
// whole number of skippable frames and lists them.
func skippableRun(gap []byte, base uint64) ([]Skippable, error) {
	le := binary.LittleEndian
	var out []Skippable
	for pos := uint64(0); pos < uint64(len(gap)); {
		rest := gap[pos:]
		if len(rest) < 8 || le.Uint32(rest)&SkippableMagicMask != SkippableMagicBase {
			return nil, fmt.Errorf("seek table: bytes at offset %d between the data frames and the table are not a skippable frame", base+pos)
		}
		end := pos + 8 + uint64(le.Uint32(rest[4:]))
		if end > uint64(len(gap)) {
			return nil, fmt.Errorf("seek table: skippable frame at offset %d overruns the table", base+pos)
		}
		out = append(out, Skippable{Magic: le.Uint32(rest), Payload: [2]int64{int64(base + pos + 8), int64(base + end)}})
		pos = end
	}
	return out, nil
}

// MaxFrame is the decompressed size of the biggest frame in the table.
func (t *SeekTable) MaxFrame() int64 {
	var m uint32
	for _, f := range t.Frames {
		m = max(m, f.DSize)
	}
	return int64(m)
}

// FrameAt returns the frame holding decompressed stream offset off, or -1
// when off is at or past the end of the stream. Empty frames are skipped.
func (t *SeekTable) FrameAt(off int64) int {
	if off < 0 || off >= t.Size {
		return -1
	}
	// The last frame whose start is ≤ off, then forward over empty frames.
	i := sort.Search(len(t.Starts), func(i int) bool { return t.Starts[i] > off }) - 1
	for i < len(t.Frames) && t.Starts[i]+int64(t.Frames[i].DSize) <= off {
		i++
	}
	return i
}
