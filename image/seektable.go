package image

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// seekEntry describes one data frame in the seek table.
type seekEntry struct {
	csize    uint32 // bytes of the frame in the file
	dsize    uint32 // bytes it decompresses to
	checksum uint32 // low 32 bits of XXH64 of the decompressed bytes
}

// seekTable is a parsed seek table with the derived frame offsets.
type seekTable struct {
	frames       []seekEntry
	offsets      []int64 // file offset of each data frame
	hasChecksums bool
	dataEnd      int64 // D: end of the last data frame
	tableStart   int64 // T: offset of the seek table frame
}

// errNoSeekTable is returned for input that does not end in a seek table.
var errNoSeekTable = errors.New("no zstd seek table at the end of the file")

// appendSeekTable appends the seek table skippable frame for frames, with
// checksums, to dst.
func appendSeekTable(dst []byte, frames []seekEntry) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, seekTableFrameMagic)
	dst = le.AppendUint32(dst, uint32(len(frames)*seekTableEntrySize+seekTableFooterSize))
	for _, f := range frames {
		dst = le.AppendUint32(dst, f.csize)
		dst = le.AppendUint32(dst, f.dsize)
		dst = le.AppendUint32(dst, f.checksum)
	}
	dst = le.AppendUint32(dst, uint32(len(frames)))
	dst = append(dst, seekTableChecksumBit)
	return le.AppendUint32(dst, seekableFooterMagic)
}

// parseSeekTable reads the seek table at the end of image b and checks that
// it describes the file exactly: the data frames start at offset 0, their
// compressed sizes end at or before the seek table, and only skippable frames
// lie in between.
func parseSeekTable(b []byte) (*seekTable, error) {
	le := binary.LittleEndian
	size := uint64(len(b))
	if size < 8+seekTableFooterSize {
		return nil, errNoSeekTable
	}
	footer := b[size-seekTableFooterSize:]
	if le.Uint32(footer[5:]) != seekableFooterMagic {
		return nil, errNoSeekTable
	}
	n := uint64(le.Uint32(footer))
	desc := footer[4]
	if desc&seekTableReserved != 0 {
		return nil, fmt.Errorf("seek table: reserved descriptor bits set (%#x)", desc)
	}
	st := &seekTable{hasChecksums: desc&seekTableChecksumBit != 0}
	entrySize := uint64(seekTableEntryNoSum)
	if st.hasChecksums {
		entrySize = seekTableEntrySize
	}
	payload := n*entrySize + seekTableFooterSize
	if payload+8 > size {
		return nil, fmt.Errorf("seek table: %d frames do not fit in a %d-byte file", n, size)
	}
	tableStart := size - payload - 8
	head := b[tableStart:]
	if le.Uint32(head) != seekTableFrameMagic || uint64(le.Uint32(head[4:])) != payload {
		return nil, fmt.Errorf("seek table: bad frame header at offset %d", tableStart)
	}
	st.tableStart = int64(tableStart)
	st.frames = make([]seekEntry, n)
	st.offsets = make([]int64, n)
	var off uint64
	entries := head[8:]
	for i := range st.frames {
		e := entries[uint64(i)*entrySize:]
		f := seekEntry{csize: le.Uint32(e), dsize: le.Uint32(e[4:])}
		if st.hasChecksums {
			f.checksum = le.Uint32(e[8:])
		}
		if f.csize == 0 {
			return nil, fmt.Errorf("seek table: frame %d has size 0", i)
		}
		st.frames[i] = f
		st.offsets[i] = int64(off)
		off += uint64(f.csize)
		if off > tableStart {
			return nil, fmt.Errorf("seek table: frame %d ends at %d, past the table at %d", i, off, tableStart)
		}
	}
	st.dataEnd = int64(off)
	if err := checkSkippableRun(b[off:tableStart], off); err != nil {
		return nil, err
	}
	return st, nil
}

// checkSkippableRun requires gap (which starts at file offset base) to be a
// whole number of skippable frames.
func checkSkippableRun(gap []byte, base uint64) error {
	le := binary.LittleEndian
	for pos := uint64(0); pos < uint64(len(gap)); {
		rest := gap[pos:]
		if len(rest) < 8 || le.Uint32(rest)&skippableMagicMask != skippableMagicBase {
			return fmt.Errorf("seek table: bytes at offset %d between the data frames and the table are not a skippable frame", base+pos)
		}
		end := pos + 8 + uint64(le.Uint32(rest[4:]))
		if end > uint64(len(gap)) {
			return fmt.Errorf("seek table: skippable frame at offset %d overruns the table", base+pos)
		}
		pos = end
	}
	return nil
}
