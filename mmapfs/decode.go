package mmapfs

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// NewDecoder returns a zstd decoder for DecodeFrame that refuses frames
// over maxFrame decompressed bytes or asking for a window over maxWindow,
// before allocating for them. concurrency bounds the DecodeAll calls that
// run at once without allocating more.
func NewDecoder(maxFrame int64, maxWindow uint64, concurrency int) (*zstd.Decoder, error) {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(max(concurrency, 1)),
		zstd.WithDecoderMaxMemory(uint64(max(maxFrame, 1))),
		zstd.WithDecoderMaxWindow(max(maxWindow, zstd.MinWindowSize)),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return dec, nil
}

// DecodeFrame decompresses data frame i of the image in m, described by
// t, into dst's storage (grown when too small) and checks it against the
// table: the decompressed size, and the content checksum when both carry
// one. Where src can hold the compressed frame and m Copies, it reads the
// frame into src with pread(2) and decodes that: for a frame read once,
// as an unpack reads it, copying it out of the page cache costs less than
// mapping its pages (on the virtual machines measured, a fifth less time
// for the decode: go run ./bench/framesrc). Otherwise it reads the frame
// through a view of m with faults turned into ErrFault, on the calling
// goroutine (as DecodeAll runs).
func DecodeFrame(dec *zstd.Decoder, m *Mapping, t *SeekTable, i int, dst, src []byte) (out []byte, err error) {
	off, n := t.Offsets[i], int64(t.Frames[i].CSize)
	if int64(cap(src)) >= n && m.Copies() {
		if src, err = m.copied(src[:n], off); err != nil {
			return nil, err
		}
		return decodeFrame(dec, src, t.Frames[i], t.HasChecksums, dst)
	}
	v, err := m.view(off, n)
	if err != nil {
		return nil, err
	}
	defer v.close()
	err = Guard(func() error {
		out, err = decodeFrame(dec, v.b, t.Frames[i], t.HasChecksums, dst)
		return err
	})
	return out, err
}

// decodeFrame decompresses the zstd frame src of table entry e into dst.
func decodeFrame(dec *zstd.Decoder, src []byte, e Frame, checksums bool, dst []byte) ([]byte, error) {
	if len(src) < 4 || binary.LittleEndian.Uint32(src) != ZstdFrameMagic {
		return nil, errors.New("not a zstd frame")
	}
	// Frame_Header_Descriptor bit 2 says the frame carries a content
	// checksum, which must then match the table's.
	if checksums && len(src) > 8 && src[4]&4 != 0 &&
		binary.LittleEndian.Uint32(src[len(src)-4:]) != e.Checksum {
		return nil, errors.New("checksum differs from the seek table's")
	}
	if cap(dst) < int(e.DSize) {
		dst = make([]byte, 0, e.DSize)
	}
	out, err := dec.DecodeAll(src, dst[:0:e.DSize])
	if err != nil {
		return nil, err
	}
	if len(out) != int(e.DSize) {
		return nil, fmt.Errorf("decoded %d bytes, seek table says %d", len(out), e.DSize)
	}
	return out, nil
}
