package mmapfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

// HasSeekTable reports whether the file r of size bytes ends in the
// seekable format's footer magic.
func HasSeekTable(r io.ReaderAt, size int64) (bool, error) {
	if size < seekTableFooterSize {
		return false, nil
	}
	var magic [4]byte
	if err := readFull(r, magic[:], size-4); err != nil {
		return false, err
	}
	return binary.LittleEndian.Uint32(magic[:]) == SeekableFooterMagic, nil
}

// Bounds on what ParseSeekTable reads, so that a hostile table cannot make
// it allocate more than a few hundred MiB: 4 Mi frames are 16 TiB of
// stream in berth's default frames. A berth image has one skippable frame,
// its index; readers accept up to maxSkippable.
const (
	maxSeekFrames = 1 << 22
	maxSkippable  = 1024
)

// ParseSeekTable reads the seek table at the end of the image r of size
// bytes and checks that it describes the file exactly: the data frames
// start at offset 0, their compressed sizes end at or before the seek
// table, and only skippable frames lie in between. It reads only the
// table and the skippable frames' headers. A Mapping is an r whose faults
// are errors.
func ParseSeekTable(r io.ReaderAt, size int64) (*SeekTable, error) {
	le := binary.LittleEndian
	if size < 8+seekTableFooterSize {
		return nil, ErrNoSeekTable
	}
	var footer [seekTableFooterSize]byte
	if err := readFull(r, footer[:], size-seekTableFooterSize); err != nil {
		return nil, err
	}
	if le.Uint32(footer[5:]) != SeekableFooterMagic {
		return nil, ErrNoSeekTable
	}
	n, desc := int64(le.Uint32(footer[:])), footer[4]
	if desc&seekTableReserved != 0 {
		return nil, fmt.Errorf("seek table: reserved descriptor bits set (%#x)", desc)
	}
	st := &SeekTable{HasChecksums: desc&seekTableChecksumBit != 0}
	entrySize := int64(seekTableEntryNoSum)
	if st.HasChecksums {
		entrySize = seekTableEntrySize
	}
	payload := n*entrySize + seekTableFooterSize
	if payload+8 > size {
		return nil, fmt.Errorf("seek table: %d frames do not fit in a %d-byte file", n, size)
	}
	if n > maxSeekFrames {
		return nil, fmt.Errorf("seek table: %d frames, over the limit of %d", n, maxSeekFrames)
	}
	st.TableStart = size - payload - 8
	var head [8]byte
	if err := readFull(r, head[:], st.TableStart); err != nil {
		return nil, err
	}
	if le.Uint32(head[:]) != SeekTableFrameMagic || int64(le.Uint32(head[4:])) != payload {
		return nil, fmt.Errorf("seek table: bad frame header at offset %d", st.TableStart)
	}
	if err := st.readFrames(r, n, entrySize); err != nil {
		return nil, err
	}
	skip, err := skippableRun(r, st.DataEnd, st.TableStart)
	if err != nil {
		return nil, err
	}
	st.Skippable = skip
	return st, nil
}

// readFrames reads the n entries of the table and derives the offsets,
// in pieces of at most 48 KiB.
func (st *SeekTable) readFrames(r io.ReaderAt, n, entrySize int64) error {
	le := binary.LittleEndian
	st.Frames = make([]Frame, n)
	st.Offsets = make([]int64, n)
	st.Starts = make([]int64, n)
	var off, dsum int64
	buf := make([]byte, min(n, 4096)*entrySize)
	for i := range n {
		k := i % 4096
		if k == 0 {
			chunk := buf[:min(n-i, 4096)*entrySize]
			if err := readFull(r, chunk, st.TableStart+8+i*entrySize); err != nil {
				return err
			}
		}
		e := buf[k*entrySize:]
		f := Frame{CSize: le.Uint32(e), DSize: le.Uint32(e[4:])}
		if st.HasChecksums {
			f.Checksum = le.Uint32(e[8:])
		}
		if f.CSize == 0 {
			return fmt.Errorf("seek table: frame %d has size 0", i)
		}
		st.Frames[i] = f
		st.Offsets[i] = off
		st.Starts[i] = dsum
		off += int64(f.CSize)
		dsum += int64(f.DSize)
		if off > st.TableStart {
			return fmt.Errorf("seek table: frame %d ends at %d, past the table at %d", i, off, st.TableStart)
		}
	}
	st.DataEnd, st.Size = off, dsum
	return nil
}

// readFull reads len(p) bytes at off; running out is an error.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("seek table: reading %d bytes at offset %d: %w", len(p), off, err)
}

// skippableRun requires [start, end) of r to be a whole number of
// skippable frames and lists them.
func skippableRun(r io.ReaderAt, start, end int64) ([]Skippable, error) {
	le := binary.LittleEndian
	var out []Skippable
	for pos := start; pos < end; {
		var h [8]byte
		if end-pos >= 8 {
			if err := readFull(r, h[:], pos); err != nil {
				return nil, err
			}
		}
		if end-pos < 8 || le.Uint32(h[:])&SkippableMagicMask != SkippableMagicBase {
			return nil, fmt.Errorf("seek table: bytes at offset %d between the data frames and the table are not a skippable frame", pos)
		}
		if len(out) == maxSkippable {
			return nil, fmt.Errorf("seek table: more than %d skippable frames before the table", maxSkippable)
		}
		next := pos + 8 + int64(le.Uint32(h[4:]))
		if next > end {
			return nil, fmt.Errorf("seek table: skippable frame at offset %d overruns the table", pos)
		}
		out = append(out, Skippable{Magic: le.Uint32(h[:]), Payload: [2]int64{pos + 8, next}})
		pos = next
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

// MaxCSize is the size in the file of the largest frame.
func (t *SeekTable) MaxCSize() int64 {
	var m uint32
	for _, f := range t.Frames {
		m = max(m, f.CSize)
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
