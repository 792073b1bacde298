package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"berth/mmapfs"

	"golang.org/x/sys/unix"
)

// Sparse entries are unpacked with their holes: each data segment is
// written at its offset and the file is then truncated to its size, so a
// hole is never written as zeros. archive/tar reads every GNU sparse
// format but keeps the map to itself and reads holes back as zeros, so
// the unpacker reads the map again from the header bytes archive/tar
// consumed (kept by a tap on the stream), reads the segments from the
// stream itself, and starts a new tar reader after the entry.

// tap keeps a copy of what the tar reader reads while it reads one entry's
// headers, up to a limit.
type tap struct {
	buf   []byte
	start int64 // stream offset of buf[0]
	limit int
	on    bool
	over  bool // more than limit bytes
}

func newTap(lim Limits) *tap { return &tap{limit: int(lim.MaxHeaderBytes) + 2*tarBlockSize} }

// begin starts keeping the bytes read from stream offset off.
func (t *tap) begin(off int64) { t.buf, t.start, t.on, t.over = t.buf[:0], off, true, false }

// end stops keeping bytes.
func (t *tap) end() { t.on = false }

// note is called with every read of the stream (t may be nil): p was
// read at offset off. Bytes before the offset begin was given are not
// kept (a sparse file's data, which the tar reader skips by reading it);
// a seek in between (skipped file data) starts the copy again.
func (t *tap) note(off int64, p []byte) {
	if t == nil || !t.on {
		return
	}
	if off < t.start && len(t.buf) == 0 {
		if off+int64(len(p)) <= t.start {
			return
		}
		p, off = p[t.start-off:], t.start
	}
	if off != t.start+int64(len(t.buf)) {
		t.buf, t.start, t.over = t.buf[:0], off, false
	}
	if t.over || len(t.buf)+len(p) > t.limit {
		t.over = true
		return
	}
	t.buf = append(t.buf, p...)
}

// bytes returns the stream's bytes [from, to), if they were kept.
func (t *tap) bytes(from, to int64) ([]byte, bool) {
	if t.over || from < t.start || to != t.start+int64(len(t.buf)) {
		return nil, false
	}
	return t.buf[from-t.start:], true
}

// sparseLayout is where a sparse entry's data lies.
type sparseLayout struct {
	segs []mmapfs.Segment
	data int64 // bytes of the segments, in the stream after the headers
	pad  int64 // zeros after them, to the next header
}

// diskBlock is the block size a sparse file's segments are counted in:
// the most common filesystem block, and the page of tmpfs.
const diskBlock = 4096

// disk is the bytes of the blocks the segments touch, each block once
// (segments finer than a block may share one), which bounds what the file
// takes on disk.
func (sp *sparseLayout) disk() int64 {
	var n int64
	done := int64(-1) // the last block counted: segments are in order (mmapfs.CheckSegments)
	for _, s := range sp.segs {
		if s.Len > 0 {
			first, last := s.Off/diskBlock, (s.Off+s.Len-1)/diskBlock // within the file's size
			first = max(first, done+1)
			if last >= first {
				n += (last - first + 1) * diskBlock
				done = last
			}
		}
	}
	return n
}

// Keys of GNU's older PAX sparse formats 0.0 and 0.1 (archive/tar turns
// 0.0's offset and numbytes records into a map record).
const (
	paxSparseMap       = "GNU.sparse.map"
	paxSparseNumBlocks = "GNU.sparse.numblocks"
)

// sparseOf returns the layout of the entry archive/tar just read, or nil
// when it is not sparse; t holds the stream's bytes from the entry's first
// header block, at start, to now.
func sparseOf(hdr *tar.Header, t *tap, start, now int64) (*sparseLayout, error) {
	kind := sparseKind(hdr)
	if kind == 0 {
		return nil, nil
	}
	raw, ok := t.bytes(start, now)
	if !ok {
		return nil, fmt.Errorf("%w: sparse file headers over %d bytes", errHeaderTooBig, t.limit)
	}
	l, err := sparseLayoutOf(hdr, kind, raw)
	if err != nil {
		return nil, fmt.Errorf("sparse file: %w", err)
	}
	return l, nil
}

// sparseKind is the sparse format of the entry archive/tar just read, as
// archive/tar decides: 'S' (old GNU), '0' (PAX 0.0 and 0.1), '1' (PAX
// 1.0), or 0 when the entry is not sparse (a version archive/tar does not
// know is plain data).
func sparseKind(hdr *tar.Header) byte {
	major, minor := hdr.PAXRecords[paxSparseMajor], hdr.PAXRecords[paxSparseMinor]
	switch {
	case hdr.Typeflag == tar.TypeGNUSparse:
		return 'S'
	case major == "0" && (minor == "0" || minor == "1"):
		return '0'
	case major == "1" && minor == "0":
		return '1'
	case major != "" || minor != "":
		return 0
	case hdr.PAXRecords[paxSparseMap] != "":
		return '0'
	}
	return 0
}

// sparseLayoutOf reads the map of a sparse entry of the given kind from
// its header bytes and checks it against the entry's data size.
func sparseLayoutOf(hdr *tar.Header, kind byte, raw []byte) (*sparseLayout, error) {
	main, rest, err := mainHeader(raw)
	if err != nil {
		return nil, err
	}
	physical, ok := tarNumeric(main[124:136])
	if v, set := hdr.PAXRecords["size"]; set {
		physical, err = strconv.ParseInt(v, 10, 64)
		ok = err == nil
	}
	if !ok || physical < 0 {
		return nil, errors.New("bad size field")
	}
	var segs []mmapfs.Segment
	mapLen := 0
	switch kind {
	case '1':
		if segs, mapLen, err = mmapfs.ParseSparseMap(rest, hdr.Size); err == nil && mapLen != len(rest) {
			err = errors.New("map block not where the tar reader found it")
		}
	case '0':
		segs, err = paxSparseSegments(hdr.PAXRecords)
		if err == nil && len(rest) != 0 {
			err = errors.New("unexpected blocks after the header")
		}
	case 'S':
		segs, err = gnuSparseSegments(main, rest)
	}
	if err == nil {
		err = mmapfs.CheckSegments(segs, hdr.Size)
	}
	if err != nil {
		return nil, err
	}
	l := &sparseLayout{segs: segs, data: mmapfs.SegmentBytes(segs)}
	if physical != int64(mapLen)+l.data {
		return nil, fmt.Errorf("the map holds %d bytes, the header %d", int64(mapLen)+l.data, physical-int64(mapLen))
	}
	l.pad = (tarBlockSize - physical%tarBlockSize) % tarBlockSize
	return l, nil
}

// mainHeader skips the PAX and GNU long-name headers at the start of raw
// and returns the entry's own header block and the bytes after it.
func mainHeader(raw []byte) (blk, rest []byte, err error) {
	for len(raw) >= tarBlockSize {
		blk := raw[:tarBlockSize]
		switch blk[156] {
		case tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
			size, ok := tarNumeric(blk[124:136])
			if !ok || size < 0 || size > int64(len(raw)) {
				return nil, nil, errors.New("bad extended header size")
			}
			next := tarBlockSize + (size+tarBlockSize-1)&^(tarBlockSize-1)
			if next > int64(len(raw)) {
				return nil, nil, errors.New("extended header runs past the headers read")
			}
			raw = raw[next:]
		default:
			return blk, raw[tarBlockSize:], nil
		}
	}
	return nil, nil, errors.New("header block not found")
}

// tarNumeric reads a numeric header field: octal, or base-256 when its
// top bit is set (positive values only).
func tarNumeric(f []byte) (int64, bool) {
	if len(f) > 0 && f[0]&0x80 != 0 {
		if f[0]&0x40 != 0 {
			return 0, false
		}
		var x uint64
		for i, c := range f {
			if i == 0 {
				c &= 0x7f
			}
			if x>>55 != 0 {
				return 0, false
			}
			x = x<<8 | uint64(c)
		}
		return int64(x), true
	}
	f = bytes.Trim(f, " \x00")
	if len(f) == 0 {
		return 0, true
	}
	v, err := strconv.ParseInt(string(f), 8, 64)
	return v, err == nil
}

// paxSparseSegments reads the map of the PAX sparse formats 0.0 and 0.1.
func paxSparseSegments(recs map[string]string) ([]mmapfs.Segment, error) {
	n, err := strconv.ParseInt(recs[paxSparseNumBlocks], 10, 0)
	if err != nil || n < 0 || n > mmapfs.MaxSparseMap {
		return nil, fmt.Errorf("bad %s", paxSparseNumBlocks)
	}
	fields := strings.Split(recs[paxSparseMap], ",")
	if len(fields) == 1 && fields[0] == "" {
		fields = nil
	}
	if int64(len(fields)) != 2*n {
		return nil, fmt.Errorf("%s holds %d numbers for %d segments", paxSparseMap, len(fields), n)
	}
	segs := make([]mmapfs.Segment, n)
	for i := range segs {
		off, err1 := strconv.ParseInt(fields[2*i], 10, 64)
		length, err2 := strconv.ParseInt(fields[2*i+1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("bad number in %s", paxSparseMap)
		}
		segs[i] = mmapfs.Segment{Off: off, Len: length}
	}
	return segs, nil
}

// gnuSparseSegments reads the map of GNU's old sparse format: four
// entries in the header block, then blocks of 21 while a block's
// isextended byte is set, all of which archive/tar read as the header.
func gnuSparseSegments(main, rest []byte) ([]mmapfs.Segment, error) {
	var segs []mmapfs.Segment
	entries, n, ext := main[386:482], 4, main[482]
	for {
		for i := range n {
			e := entries[24*i:]
			if e[0] == 0 {
				break
			}
			off, ok1 := tarNumeric(e[:12])
			length, ok2 := tarNumeric(e[12:24])
			if !ok1 || !ok2 {
				return nil, errors.New("bad number in the sparse header")
			}
			segs = append(segs, mmapfs.Segment{Off: off, Len: length})
		}
		if ext == 0 {
			break
		}
		if len(rest) < tarBlockSize {
			return nil, errors.New("sparse extension header missing")
		}
		entries, n, ext, rest = rest[:504], 21, rest[504], rest[tarBlockSize:]
	}
	if len(rest) != 0 {
		return nil, errors.New("unexpected blocks after the header")
	}
	return segs, nil
}

// writeSparse writes a sparse file's segments, read in order from r, at
// their offsets in fd and sets its size: what no segment covers stays a
// hole. It returns the bytes written.
func (x *extractor) writeSparse(fd int, segs []mmapfs.Segment, r io.Reader, size int64) (int64, error) {
	var total int64
	buf := x.buffer()
	for _, s := range segs {
		for done := int64(0); done < s.Len; {
			n, err := io.ReadFull(r, buf[:min(s.Len-done, int64(len(buf)))])
			if err != nil {
				return total, fmt.Errorf("reading data at byte %d of the file: %w", s.Off+done, err)
			}
			for p := buf[:n]; len(p) > 0; {
				w, err := unix.Pwrite(fd, p, s.Off+done)
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					return total, fmt.Errorf("write: %w", err)
				}
				p, done, total = p[w:], done+int64(w), total+int64(w)
			}
		}
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		return total, fmt.Errorf("truncate to %d bytes: %w", size, err)
	}
	return total, nil
}
