package mmapfs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Sparse files. A sparse regular file is stored as GNU tar stores it in
// its PAX sparse format 1.0: the entry's data starts with a map block —
// decimal numbers, one a line: the number of segments, then each
// segment's offset in the file and length — padded with zeros to a
// multiple of 512 bytes, followed by the segments' bytes, one after the
// other. What no segment covers is a hole and reads as zeros.

// Segment is a run of data in a sparse file: Len bytes at offset Off.
type Segment struct {
	Off, Len int64
}

const (
	sparseBlock = 512
	// MaxSparseMap bounds a sparse map block, as archive/tar bounds it.
	MaxSparseMap = 1 << 20
)

// Errors of ParseSparseMap.
var (
	// ErrSparseShort: b ends before the map does; more bytes may parse.
	ErrSparseShort = errors.New("sparse map: truncated")
	errSparseMap   = errors.New("sparse map")
)

// ParseSparseMap parses the map block at the start of b for a file of
// size bytes. It returns the segments and the length of the block (a
// multiple of 512). It reads what archive/tar reads and accepts what it
// accepts: segments in order, not overlapping, inside the file, and at
// most MaxSparseMap bytes of map.
func ParseSparseMap(b []byte, size int64) ([]Segment, int, error) {
	pos := 0
	next := func() (int64, error) {
		nl := bytes.IndexByte(b[pos:], '\n')
		if nl < 0 {
			if len(b) >= MaxSparseMap {
				return 0, fmt.Errorf("%w: longer than %d bytes", errSparseMap, MaxSparseMap)
			}
			return 0, ErrSparseShort
		}
		if pos+nl >= MaxSparseMap {
			return 0, fmt.Errorf("%w: longer than %d bytes", errSparseMap, MaxSparseMap)
		}
		v, err := strconv.ParseInt(string(b[pos:pos+nl]), 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%w: bad number %q", errSparseMap, b[pos:pos+nl])
		}
		pos += nl + 1
		return v, nil
	}
	n, err := next()
	if err != nil {
		return nil, 0, err
	}
	if n > MaxSparseMap/4 { // each segment takes at least "0\n0\n"
		return nil, 0, fmt.Errorf("%w: %d segments", errSparseMap, n)
	}
	segs := make([]Segment, 0, n)
	for range n {
		off, err := next()
		if err != nil {
			return nil, 0, err
		}
		length, err := next()
		if err != nil {
			return nil, 0, err
		}
		segs = append(segs, Segment{Off: off, Len: length})
	}
	if err := CheckSegments(segs, size); err != nil {
		return nil, 0, err
	}
	blockLen := (pos + sparseBlock - 1) &^ (sparseBlock - 1)
	if blockLen > len(b) {
		return nil, 0, ErrSparseShort
	}
	return segs, blockLen, nil
}

// CheckSegments accepts the segments of a sparse file of size bytes as
// archive/tar does: in order, not overlapping, inside the file.
func CheckSegments(segs []Segment, size int64) error {
	var end int64
	for _, s := range segs {
		if s.Off < end || s.Len < 0 || s.Len > size || s.Off > size-s.Len {
			return fmt.Errorf("%w: segment %d+%d overlaps another or passes the size %d", errSparseMap, s.Off, s.Len, size)
		}
		end = s.Off + s.Len
	}
	return nil
}

// AppendSparseMap appends the map block of segs to dst.
func AppendSparseMap(dst []byte, segs []Segment) []byte {
	start := len(dst)
	dst = strconv.AppendInt(dst, int64(len(segs)), 10)
	dst = append(dst, '\n')
	for _, s := range segs {
		dst = strconv.AppendInt(dst, s.Off, 10)
		dst = append(dst, '\n')
		dst = strconv.AppendInt(dst, s.Len, 10)
		dst = append(dst, '\n')
	}
	pad := (sparseBlock - (len(dst)-start)%sparseBlock) % sparseBlock
	return append(dst, make([]byte, pad)...)
}

// SegmentBytes is the data the segments hold.
func SegmentBytes(segs []Segment) int64 {
	var n int64
	for _, s := range segs {
		n += s.Len
	}
	return n
}

// StreamBytes is how many bytes of the tar stream the entry's data takes:
// its size, or for a sparse file its map block and segments.
func (e *Entry) StreamBytes() int64 {
	switch {
	case e.Sparse:
		return e.Stored
	case e.Type == TypeReg:
		return e.Size
	}
	return 0
}
