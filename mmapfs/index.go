package mmapfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// The berth index, a skippable frame with magic IndexFrameMagic between the
// data frames and the seek table. Its byte layout is documented in package
// berth/image; this file is the one codec for it.
const (
	IndexVersion   = 2 // written; version 1 (no nanoseconds, no sparse files) is still read
	indexMagic     = "BRTI"
	indexHeader    = 24
	indexRecordV1  = 52
	indexRecord    = 64
	indexTrailer   = 4
	maxIndexTarget = 4095 // PATH_MAX less the NUL
)

// EntryType is the kind of an index entry.
type EntryType uint8

// Entry types; the numbers are part of the format.
const (
	TypeReg EntryType = 1 + iota
	TypeDir
	TypeSymlink
	TypeLink // hardlink: Link names the entry it shares data with
	TypeChar
	TypeBlock
	TypeFifo
)

// Flags in the type byte of a record.
const (
	flagImplicit = 0x80 // a directory no tar entry names; see Entry.Implicit
	flagSparse   = 0x40 // version 2: a sparse regular file; see Entry.Sparse
)

// Entry is one path of the image.
type Entry struct {
	Parent   uint32 // index of the parent directory; the root's is 0
	Name     string // last path component; "" for the root
	Type     EntryType
	Implicit bool   // a parent directory the tar does not list (extractors make it 0755)
	Mode     uint32 // permission bits with setuid, setgid and sticky (mode & 07777)
	UID, GID uint32
	MTime    int64  // seconds since the epoch
	MTimeNs  uint32 // and nanoseconds (< 1e9; 0 in version 1 indexes)
	Size     int64  // regular files: bytes of data (a sparse file's holes included)
	// Sparse: a regular file whose data in the stream is a GNU sparse map
	// block (format 1.0, see ParseSparseMap) followed by its data segments;
	// Stored is how many bytes those take in the stream (0 for any other
	// entry).
	Sparse   bool
	Stored   int64
	Devmajor uint32
	Devminor uint32
	Link     string // symlink target, or hardlink target path
	Frame    uint32 // data frame holding the entry's first data byte
	Offset   uint32 // offset of that byte in the decompressed frame
}

// Index is a parsed berth index. Entries are in tree order: entry 0 is the
// root, every entry's parent comes before it, and the children of each
// directory are contiguous and sorted by name (byte-wise).
type Index struct {
	Entries    []Entry
	StreamSize int64 // bytes of the decompressed tar stream
}

// ErrIndex is wrapped by every index parsing error.
var ErrIndex = errors.New("berth index")

// AppendIndexFrame appends ix as a complete skippable frame to dst, in
// the current version.
func AppendIndexFrame(dst []byte, ix *Index) []byte {
	le := binary.LittleEndian
	var strs bytes.Buffer
	recs := make([]byte, 0, len(ix.Entries)*indexRecord)
	for _, e := range ix.Entries {
		nameOff := uint32(strs.Len())
		strs.WriteString(e.Name)
		linkOff := uint32(strs.Len())
		strs.WriteString(e.Link)
		size := uint64(e.Size)
		if e.Type == TypeChar || e.Type == TypeBlock {
			size = uint64(e.Devmajor)<<32 | uint64(e.Devminor)
		}
		typ := byte(e.Type)
		if e.Implicit {
			typ |= flagImplicit
		}
		if e.Sparse {
			typ |= flagSparse
		}
		recs = le.AppendUint64(recs, size)
		recs = le.AppendUint64(recs, uint64(e.MTime))
		for _, v := range []uint32{e.Parent, nameOff, linkOff, e.Mode, e.UID, e.GID, e.Frame, e.Offset} {
			recs = le.AppendUint32(recs, v)
		}
		recs = le.AppendUint16(recs, uint16(len(e.Link)))
		recs = append(recs, byte(len(e.Name)), typ)
		recs = le.AppendUint32(recs, e.MTimeNs)
		recs = le.AppendUint64(recs, uint64(e.Stored))
	}
	payloadLen := indexHeader + len(recs) + strs.Len() + indexTrailer
	dst = le.AppendUint32(dst, IndexFrameMagic)
	dst = le.AppendUint32(dst, uint32(payloadLen))
	start := len(dst)
	dst = append(dst, indexMagic...)
	dst = le.AppendUint16(dst, IndexVersion)
	dst = le.AppendUint16(dst, 0) // flags
	dst = le.AppendUint32(dst, uint32(len(ix.Entries)))
	dst = le.AppendUint32(dst, uint32(strs.Len()))
	dst = le.AppendUint64(dst, uint64(ix.StreamSize))
	dst = append(dst, recs...)
	dst = append(dst, strs.Bytes()...)
	return le.AppendUint32(dst, crc32c(dst[start:]))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the index's checksum: CRC-32C (Castagnoli).
func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// ParseIndex parses and validates the payload of an index frame (without
// the 8-byte frame header), of version 1 or 2. It copies what it keeps, so
// payload may be a mapping that changes afterwards (call it under Guard).
// The checks make the entries a tree: see Index.
func ParseIndex(p []byte) (*Index, error) {
	le := binary.LittleEndian
	if len(p) < indexHeader+indexRecordV1+indexTrailer {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrIndex, len(p))
	}
	if string(p[:4]) != indexMagic {
		return nil, fmt.Errorf("%w: bad magic % x", ErrIndex, p[:4])
	}
	version := le.Uint16(p[4:])
	rec := uint64(indexRecord)
	switch version {
	case 1:
		rec = indexRecordV1
	case IndexVersion:
	default:
		return nil, fmt.Errorf("%w: version %d, this berth reads versions 1 and %d", ErrIndex, version, IndexVersion)
	}
	if f := le.Uint16(p[6:]); f != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrIndex, f)
	}
	n, strLen := uint64(le.Uint32(p[8:])), uint64(le.Uint32(p[12:]))
	if n == 0 {
		// The length check above wants one record's bytes, which names
		// alone could make up.
		return nil, fmt.Errorf("%w: no entries (the first is the root)", ErrIndex)
	}
	if indexHeader+n*rec+strLen+indexTrailer != uint64(len(p)) {
		return nil, fmt.Errorf("%w: %d entries and %d bytes of names do not make %d bytes", ErrIndex, n, strLen, len(p))
	}
	body := p[:len(p)-indexTrailer]
	if sum := le.Uint32(p[len(body):]); sum != crc32c(body) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrIndex)
	}
	ix := &Index{StreamSize: int64(le.Uint64(p[16:])), Entries: make([]Entry, n)}
	if ix.StreamSize < 0 {
		return nil, fmt.Errorf("%w: negative stream size", ErrIndex)
	}
	strs := string(body[indexHeader+n*rec:]) // one copy for all names
	for i := range ix.Entries {
		r := body[indexHeader+uint64(i)*rec:][:rec]
		e, err := decodeRecord(r, strs)
		if err == nil {
			err = ix.checkEntry(i, &e)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrIndex, i, err)
		}
		ix.Entries[i] = e
	}
	return ix, nil
}

// decodeRecord reads one fixed-size record (52 bytes in version 1, 64 in
// version 2); names are slices of strs.
func decodeRecord(r []byte, strs string) (Entry, error) {
	le := binary.LittleEndian
	size := le.Uint64(r)
	flags := byte(flagImplicit)
	if len(r) == indexRecord {
		flags |= flagSparse
	}
	e := Entry{
		MTime:    int64(le.Uint64(r[8:])),
		Parent:   le.Uint32(r[16:]),
		Mode:     le.Uint32(r[28:]),
		UID:      le.Uint32(r[32:]),
		GID:      le.Uint32(r[36:]),
		Frame:    le.Uint32(r[40:]),
		Offset:   le.Uint32(r[44:]),
		Type:     EntryType(r[51] &^ flags),
		Implicit: r[51]&flagImplicit != 0,
		Sparse:   r[51]&flags&flagSparse != 0,
	}
	var stored uint64
	if len(r) == indexRecord {
		e.MTimeNs, stored = le.Uint32(r[52:]), le.Uint64(r[56:])
	}
	nameOff, linkOff := uint64(le.Uint32(r[20:])), uint64(le.Uint32(r[24:]))
	nameLen, linkLen := uint64(r[50]), uint64(le.Uint16(r[48:]))
	if nameOff+nameLen > uint64(len(strs)) || linkOff+linkLen > uint64(len(strs)) {
		return e, errors.New("name outside the string table")
	}
	e.Name, e.Link = strs[nameOff:nameOff+nameLen], strs[linkOff:linkOff+linkLen]
	switch {
	case e.MTimeNs >= 1e9:
		return e, fmt.Errorf("%d nanoseconds", e.MTimeNs)
	case e.Sparse != (stored != 0):
		return e, errors.New("stored size on an entry that is not sparse, or a sparse entry without one")
	case stored > 1<<62:
		return e, fmt.Errorf("stored size %d out of range", stored)
	}
	e.Stored = int64(stored)
	switch e.Type {
	case TypeReg:
		if size > 1<<62 {
			return e, fmt.Errorf("size %d out of range", size)
		}
		e.Size = int64(size)
	case TypeChar, TypeBlock:
		e.Devmajor, e.Devminor = uint32(size>>32), uint32(size)
	default:
		if size != 0 {
			return e, fmt.Errorf("size %d on a %s", size, e.Type)
		}
	}
	return e, nil
}

// checkEntry validates entry i against the entries before it.
func (ix *Index) checkEntry(i int, e *Entry) error {
	switch {
	case e.Type < TypeReg || e.Type > TypeFifo:
		return fmt.Errorf("unknown type %d", e.Type)
	case e.Mode&^0o7777 != 0:
		return fmt.Errorf("mode %#o has more than permission bits", e.Mode)
	case e.Implicit && e.Type != TypeDir:
		return errors.New("implicit entry that is not a directory")
	case e.Sparse && (e.Type != TypeReg || e.Stored < sparseBlock):
		return errors.New("sparse entry that is not a regular file with a map block")
	case (e.Type == TypeSymlink || e.Type == TypeLink) != (e.Link != ""):
		return errors.New("link target on an entry that is no link, or a link without one")
	case len(e.Link) > maxIndexTarget || strings.IndexByte(e.Link, 0) >= 0:
		return errors.New("bad link target")
	}
	if i == 0 {
		if e.Parent != 0 || e.Name != "" || e.Type != TypeDir {
			return errors.New("the first entry is not the root directory")
		}
		return nil
	}
	if e.Parent >= uint32(i) || ix.Entries[e.Parent].Type != TypeDir {
		return fmt.Errorf("parent %d is not an earlier directory", e.Parent)
	}
	if e.Name == "" || e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\x00") {
		return fmt.Errorf("bad name %q", e.Name)
	}
	if prev := ix.Entries[i-1]; prev.Parent > e.Parent || prev.Parent == e.Parent && prev.Name >= e.Name {
		return fmt.Errorf("%q is out of order after %q", e.Name, prev.Name)
	}
	return nil
}

// String names the type as ls -l's first letter would, spelled out.
func (t EntryType) String() string {
	switch t {
	case TypeReg:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeLink:
		return "hardlink"
	case TypeChar:
		return "char"
	case TypeBlock:
		return "block"
	case TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}
