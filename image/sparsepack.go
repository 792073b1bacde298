package image

import (
	"archive/tar"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"berth/mmapfs"

	"golang.org/x/sys/unix"
)

// Sparse files are packed as GNU tar packs them with --format=posix
// --sparse: a PAX header with GNU.sparse.major=1, GNU.sparse.minor=0,
// GNU.sparse.name (the real name) and GNU.sparse.realsize, a ustar header
// named GNUSparseFile.0/NAME whose size counts the map block and the
// data, then the map block (mmapfs.AppendSparseMap) and the data segments.
// archive/tar reads this format but cannot write it (its writer drops
// GNU.sparse records), so the headers are written here. A tar that knows
// no sparse files extracts GNUSparseFile.0/NAME with the map in front of
// the data, as with GNU tar's own archives.

// Keys of the GNU sparse format 1.0.
const (
	paxSparseMajor    = "GNU.sparse.major"
	paxSparseMinor    = "GNU.sparse.minor"
	paxSparseName     = "GNU.sparse.name"
	paxSparseRealSize = "GNU.sparse.realsize"
)

// fileSegments finds the data segments of the open file f of size bytes
// with SEEK_DATA and SEEK_HOLE. It returns nil when the file has no hole,
// or the filesystem cannot tell. A file ending in a hole gets a last,
// empty segment at its size, as GNU tar writes.
func fileSegments(f *os.File, size int64) ([]mmapfs.Segment, error) {
	fd := int(f.Fd())
	var segs []mmapfs.Segment
	for pos := int64(0); pos < size; {
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break // only a hole from pos on
		}
		if err == unix.EINVAL || err == unix.EOPNOTSUPP {
			return nil, nil // no hole detection here: packed whole
		}
		if err != nil {
			return nil, fmt.Errorf("seek data: %w", err)
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("seek hole: %w", err)
		}
		hole = min(hole, size)
		segs = append(segs, mmapfs.Segment{Off: data, Len: hole - data})
		pos = hole
	}
	if mmapfs.SegmentBytes(segs) == size {
		return nil, nil
	}
	if len(segs) == 0 || segs[len(segs)-1].Off+segs[len(segs)-1].Len < size {
		segs = append(segs, mmapfs.Segment{Off: size})
	}
	return segs, nil
}

// addSparse writes a sparse file: its headers, map block and segments,
// whose bytes r yields in order.
func (s *tarSink) addSparse(hdr *tar.Header, r io.Reader, segs []mmapfs.Segment) error {
	s.fw.entryBoundary()
	mapBlock := mmapfs.AppendSparseMap(nil, segs)
	data := mmapfs.SegmentBytes(segs)
	stored := int64(len(mapBlock)) + data
	headers, err := sparseHeaders(hdr, stored)
	if err != nil {
		return err
	}
	if _, err := s.fw.Write(headers); err != nil {
		return err
	}
	if err := s.record(hdr, stored); err != nil {
		return err
	}
	if _, err := s.fw.Write(mapBlock); err != nil {
		return err
	}
	s.fw.splittable = true
	n, err := io.CopyBuffer(s.fw, io.LimitReader(r, data), s.copyBuf)
	s.fw.splittable = false
	if err == nil && n != data {
		err = fmt.Errorf("short read: got %d of %d bytes of data (file changed while packing?)", n, data)
	}
	if err != nil {
		return err
	}
	_, err = s.fw.Write(make([]byte, (tarBlockSize-data%tarBlockSize)%tarBlockSize))
	return err
}

// segmentReader reads the segments of f one after the other.
func segmentReader(f io.ReaderAt, segs []mmapfs.Segment) io.Reader {
	rs := make([]io.Reader, len(segs))
	for i, seg := range segs {
		rs[i] = io.NewSectionReader(f, seg.Off, seg.Len)
	}
	return io.MultiReader(rs...)
}

// sparseHeaders returns the PAX header (block and records) and the ustar
// block of a sparse file whose data takes stored bytes of the stream.
// Values that do not fit a ustar field go in PAX records, as archive/tar
// does; the records are sorted, so a pack is reproducible.
func sparseHeaders(hdr *tar.Header, stored int64) ([]byte, error) {
	recs := map[string]string{
		paxSparseMajor:    "1",
		paxSparseMinor:    "0",
		paxSparseName:     hdr.Name,
		paxSparseRealSize: strconv.FormatInt(hdr.Size, 10),
	}
	for k, v := range hdr.PAXRecords {
		recs[k] = v // xattrs
	}
	name := "GNUSparseFile.0/" + path.Base(hdr.Name)
	main := ustarBlock{name: name[:min(len(name), 100)], typ: tar.TypeReg}
	mtime := hdr.ModTime.Unix()
	for _, f := range []struct {
		key   string
		val   int64
		field *int64
		width int
	}{
		{"mode", hdr.Mode, &main.mode, 8}, {"uid", int64(hdr.Uid), &main.uid, 8}, {"gid", int64(hdr.Gid), &main.gid, 8},
		{"size", stored, &main.size, 12}, {"mtime", mtime, &main.mtime, 12},
	} {
		if f.val >= 0 && f.val < 1<<(3*(f.width-1)) {
			*f.field = f.val
		} else if f.key == "mode" {
			return nil, fmt.Errorf("mode %#o out of range", f.val)
		} else {
			recs[f.key] = strconv.FormatInt(f.val, 10)
		}
	}
	if hdr.ModTime.Nanosecond() != 0 {
		recs["mtime"] = formatPAXTime(hdr.ModTime)
	}
	var pax []byte
	for _, k := range slices.Sorted(maps.Keys(recs)) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("PAX record %q: invalid key", k)
		}
		pax = appendPAXRecord(pax, k, recs[k])
	}
	if len(pax) > 1<<20 {
		return nil, fmt.Errorf("PAX header of %d bytes is too large", len(pax))
	}
	x := ustarBlock{name: "PaxHeaders.0/" + main.name[len("GNUSparseFile.0/"):], typ: tar.TypeXHeader, mode: 0o644, size: int64(len(pax))}
	x.name = x.name[:min(len(x.name), 100)]
	out := x.append(nil)
	out = append(out, pax...)
	out = append(out, make([]byte, (tarBlockSize-len(pax)%tarBlockSize)%tarBlockSize)...)
	return main.append(out), nil
}

// appendPAXRecord appends "LEN key=value\n", LEN counting the whole
// record, its own digits included.
func appendPAXRecord(dst []byte, k, v string) []byte {
	size := len(k) + len(v) + 3 // space, '=', newline
	size += len(strconv.Itoa(size))
	if n := len(strconv.Itoa(size)) + len(k) + len(v) + 3; n != size {
		size = n // adding the digits added a digit
	}
	return fmt.Appendf(dst, "%d %s=%s\n", size, k, v)
}

// formatPAXTime formats a time as a PAX record does: seconds, and a
// fraction when there is one (archive/tar's rule for times before 1970).
func formatPAXTime(ts time.Time) string {
	secs, nsecs := ts.Unix(), ts.Nanosecond()
	sign := ""
	if secs < 0 {
		sign, secs, nsecs = "-", -(secs + 1), 1e9-nsecs
	}
	return strings.TrimRight(fmt.Sprintf("%s%d.%09d", sign, secs, nsecs), "0")
}

// ustarBlock is a header block of the POSIX ustar format; numbers must
// fit their octal fields.
type ustarBlock struct {
	name           string
	typ            byte
	mode, uid, gid int64
	size, mtime    int64
}

// append appends the 512-byte block with its checksum.
func (u ustarBlock) append(dst []byte) []byte {
	var b [tarBlockSize]byte
	copy(b[0:100], u.name)
	octal := func(f []byte, v int64) { // digits, then the NUL already there
		s := strconv.FormatInt(v, 8)
		copy(f, strings.Repeat("0", len(f)-1-len(s))+s)
	}
	octal(b[100:108], u.mode)
	octal(b[108:116], u.uid)
	octal(b[116:124], u.gid)
	octal(b[124:136], u.size)
	octal(b[136:148], u.mtime)
	b[156] = u.typ
	copy(b[257:265], "ustar\x0000")
	octal(b[329:337], 0) // devmajor
	octal(b[337:345], 0) // devminor
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	octal(b[148:155], sum)
	b[154] = 0 // six digits, NUL, space
	return append(dst, b[:]...)
}
