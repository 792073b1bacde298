package mmapfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"time"
)

// FileInfo describes one entry; Sys returns its *Entry.
type FileInfo struct {
	name  string
	entry Entry
}

func (i *FileInfo) Name() string       { return i.name }
func (i *FileInfo) Size() int64        { return i.entry.Size }
func (i *FileInfo) ModTime() time.Time { return time.Unix(i.entry.MTime, int64(i.entry.MTimeNs)) }
func (i *FileInfo) IsDir() bool        { return i.entry.Type == TypeDir }
func (i *FileInfo) Sys() any           { return &i.entry }

// Mode is the entry's type and permission bits as an fs.FileMode.
func (i *FileInfo) Mode() fs.FileMode {
	e := i.entry
	m := fs.FileMode(e.Mode & 0o777)
	for bit, mode := range map[uint32]fs.FileMode{0o4000: fs.ModeSetuid, 0o2000: fs.ModeSetgid, 0o1000: fs.ModeSticky} {
		if e.Mode&bit != 0 {
			m |= mode
		}
	}
	switch e.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlock:
		m |= fs.ModeDevice
	case TypeFifo:
		m |= fs.ModeNamedPipe
	}
	return m
}

// info builds the FileInfo of entry i shown under name.
func (f *FS) info(name string, i int) *FileInfo {
	base := path.Base(name)
	if name == "." || name == "" {
		base = "."
	}
	return &FileInfo{name: base, entry: f.ix.Entries[i]}
}

// File is an open non-directory: a regular file reads its data (a sparse
// file's holes as zeros), anything else reads as empty. It implements
// io.ReadSeeker and io.ReaderAt.
type File struct {
	fs    *FS
	info  *FileInfo
	start int64 // offset of the data in the decompressed stream
	size  int64
	pos   int64
	// A sparse file's segments; the data of segs[i] is at
	// start+at[i] in the stream (start is then past the map block).
	segs []Segment
	at   []int64
}

// openData opens entry i for reading; a sparse file's map is read now.
func (f *FS) openData(info *FileInfo, i int) (*File, error) {
	file := &File{fs: f, info: info}
	e := f.ix.Entries[i]
	if e.Type != TypeReg {
		return file, nil
	}
	file.start = f.table.Starts[e.Frame] + int64(e.Offset)
	file.size = e.Size
	if !e.Sparse {
		return file, nil
	}
	segs, blockLen, err := f.sparseMap(file.start, e)
	if err != nil {
		return nil, err
	}
	if int64(blockLen)+SegmentBytes(segs) != e.Stored {
		return nil, fmt.Errorf("%w: the sparse map holds %d bytes, the index says %d", ErrIndex, int64(blockLen)+SegmentBytes(segs), e.Stored)
	}
	file.start += int64(blockLen)
	file.segs, file.at = segs, make([]int64, len(segs))
	var at int64
	for k, s := range segs {
		file.at[k] = at
		at += s.Len
	}
	return file, nil
}

// sparseMap reads the map block of sparse entry e, whose data starts at
// stream offset start: a first block, then up to MaxSparseMap bytes when
// the map is longer.
func (f *FS) sparseMap(start int64, e Entry) ([]Segment, int, error) {
	for _, n := range []int64{4096, MaxSparseMap} {
		buf := make([]byte, min(n, e.Stored))
		if _, err := f.readStream(buf, start); err != nil {
			return nil, 0, err
		}
		segs, blockLen, err := ParseSparseMap(buf, e.Size)
		if err != ErrSparseShort || int64(len(buf)) == e.Stored {
			return segs, blockLen, err
		}
	}
	return nil, 0, ErrSparseShort
}

func (r *File) Stat() (fs.FileInfo, error) { return r.info, nil }
func (r *File) Close() error               { return nil }

// Read reads from the current position.
func (r *File) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.pos)
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Seek sets the position for the next Read.
func (r *File) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	case io.SeekStart:
	default:
		return r.pos, fmt.Errorf("seek %s: bad whence %d", r.info.name, whence)
	}
	if offset < 0 {
		return r.pos, fmt.Errorf("seek %s: negative position %d", r.info.name, offset)
	}
	r.pos = offset
	return offset, nil
}

// ReadAt reads len(p) bytes at off, decoding the frames that hold them.
func (r *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", r.info.name, off)
	}
	want := len(p)
	if off >= r.size {
		p = p[:0]
	} else if int64(len(p)) > r.size-off {
		p = p[:r.size-off]
	}
	var n int
	var err error
	if r.segs == nil {
		n, err = r.fs.readStream(p, r.start+off)
	} else {
		n, err = r.readSparse(p, off)
	}
	if err != nil {
		return n, fmt.Errorf("read %s: %w", r.info.name, err)
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// readSparse fills p from logical offset off of a sparse file: segment
// data from the stream, zeros elsewhere.
func (r *File) readSparse(p []byte, off int64) (int, error) {
	n := 0
	// The first segment that ends after off.
	k := sort.Search(len(r.segs), func(k int) bool { return r.segs[k].Off+r.segs[k].Len > off })
	for n < len(p) {
		pos := off + int64(n)
		if k == len(r.segs) || pos < r.segs[k].Off { // a hole
			end := int64(len(p))
			if k < len(r.segs) {
				end = min(end, r.segs[k].Off-off)
			}
			clear(p[n:end])
			n = int(end)
			continue
		}
		s := r.segs[k]
		chunk := p[n:min(int64(len(p)), s.Off+s.Len-off)]
		c, err := r.fs.readStream(chunk, r.start+r.at[k]+pos-s.Off)
		n += c
		if err != nil {
			return n, err
		}
		k++
	}
	return n, nil
}

// readStream fills p with the decompressed stream at offset off.
func (f *FS) readStream(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		s := off + int64(n)
		fi := f.table.FrameAt(s)
		if fi < 0 {
			return n, fmt.Errorf("offset %d is past the stream", s)
		}
		buf, err := f.frame(fi)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], buf[s-f.table.Starts[fi]:])
	}
	return n, nil
}

// frame returns decoded frame i, from the cache or decoded now on the
// calling goroutine with faults turned into errors.
func (f *FS) frame(i int) ([]byte, error) {
	return f.cache.get(i, func() ([]byte, error) {
		out, err := DecodeFrame(f.dec, f.m, f.table, i, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("zstd frame %d at image offset %d: %w", i, f.table.Offsets[i], err)
		}
		return out, nil
	})
}

// dir is an open directory.
type dir struct {
	fs    *FS
	info  *FileInfo
	index int
	next  int // children returned so far
}

func (d *dir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dir) Close() error               { return nil }
func (d *dir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

// ReadDir returns the next n entries (all remaining when n ≤ 0).
func (d *dir) ReadDir(n int) ([]fs.DirEntry, error) {
	if n <= 0 {
		n = -1
	}
	out := d.fs.dirEntries(d.index, d.next, n)
	d.next += len(out)
	if n > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}

// ModeString renders the entry's type and mode as ls -l does
// ("drwxr-sr-x"); a hardlink shows as the regular file it is.
func (e *Entry) ModeString() string {
	b := []byte("?rwxrwxrwx")
	if i := int(e.Type); i < len("?-dl-cbp") {
		b[0] = "?-dl-cbp"[i]
	}
	for i := range 9 {
		if e.Mode&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	for _, s := range []struct {
		bit      uint32
		at       int
		set, off byte
	}{{0o4000, 3, 's', 'S'}, {0o2000, 6, 's', 'S'}, {0o1000, 9, 't', 'T'}} {
		if e.Mode&s.bit != 0 {
			if b[s.at] == '-' {
				b[s.at] = s.off
			} else {
				b[s.at] = s.set
			}
		}
	}
	return string(b)
}
