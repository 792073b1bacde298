// Package mmapfs reads berth images through a read-only memory mapping.
//
// A Mapping is a read-only mapping of a file: one mapping of the whole
// file on 64-bit platforms, windows of bounded size mapped on demand where
// the address space is tight (32-bit platforms; see window.go). Readers
// see its bytes only as ranges — ReadAt, a Reader, DecodeFrame (which may
// read its frame with pread(2) instead) — so they never depend on which.
// Memory of a mapped file can vanish under the reader — another process
// truncates the file and the next access raises SIGBUS — so every read
// path either runs on a goroutine that has called
// debug.SetPanicOnFault(true) and recovers (Guard), or goes through
// ReadAt, a Reader or DecodeFrame, which do that themselves and turn the
// fault into ErrFault (DecodeFrame's pread turns a short read into it).
//
// On top of it the package holds the parts of the image format that both
// berth/image (which writes and unpacks images) and readers need: the zstd
// seek table (seektable.go), the berth index (index.go, tree.go), frame
// decoding with bounded memory (decode.go), and FS, an io/fs.FS over an
// image that decodes only the frames a read needs (fs.go, file.go). The
// byte layout of an image is documented in package berth/image. mmapfs
// imports nothing of berth but internal/filekind (which imports nothing
// of berth either), so berth/image can import it.
package mmapfs

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"

	"berth/internal/filekind"
)

// ErrFault reports that the mapped file could not be read: typically it was
// truncated while mapped.
var ErrFault = errors.New("mapped file changed under the reader (truncated?)")

// Mapping is a read-only, private mapping of a file: whole, or through
// windows (see window.go); a small file is read into memory instead (see
// MapFile).
type Mapping struct {
	path   string
	size   int64
	stat   unix.Stat_t // the file's, when it was mapped
	data   []byte      // the whole file, unless windowed
	inHeap bool        // read, not mapped
	ws     *windows    // windowed: data is nil
	sealed *seal       // set by Seal: reads are checked copies
	file   *os.File    // a descriptor of its own, for copied; nil if none
}

// Map maps the file at path read-only. An empty file gives an empty
// Mapping. The descriptor Map opens is closed before it returns; a
// mapped file's Mapping keeps a duplicate until Close, for DecodeFrame's
// copies (a windowed one another, for its windows), when one is to
// spare. No advice is given: see Advise. Anything but a regular file at
// path (after symlinks) is refused, "not a regular file (a FIFO)",
// without blocking: a FIFO is not waited on for a writer.
func Map(path string) (*Mapping, error) {
	// A device is refused before it is opened (opening one can act: a
	// watchdog, a tape). The open does not block (O_NONBLOCK: opening a
	// FIFO for reading would wait for a writer, forever) nor take a
	// terminal (O_NOCTTY), for what a rename puts at path in between;
	// MapFile refuses that. The flag is not cleared: a regular file's
	// reads and mappings ignore it, and nothing else is read.
	if st, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("map %s: %w", path, err)
	} else if !st.Mode().IsRegular() {
		return nil, notRegular(path, st.Mode())
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", path, &os.PathError{Op: "open", Path: path, Err: err})
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	return MapFile(f, path)
}

// notRegular is the error for a file of mode m at name that is not a
// regular one.
func notRegular(name string, m os.FileMode) error {
	return fmt.Errorf("map %s: not a regular file (%s)", name, filekind.Of(m))
}

// Advice values for Advise.
const (
	AdviseSequential = unix.MADV_SEQUENTIAL
	AdviseRandom     = unix.MADV_RANDOM
	AdviseWillNeed   = unix.MADV_WILLNEED
)

// Advise tells the kernel how the mapping will be read; it is only a hint:
// a kernel that ignores it costs speed, not safety.
func (m *Mapping) Advise(advice int) {
	switch {
	case m.ws != nil:
		m.ws.advise(advice)
	case len(m.data) > 0 && !m.inHeap:
		_ = unix.Madvise(m.data, advice)
	}
}

// Release drops the pages wholly inside [off, off+n) from this process's
// memory (MADV_DONTNEED): they stay in the page cache and are read again
// if touched, so this is only about the process's resident size. Pages
// shared with bytes outside the range are kept, and so are the pages of
// windows not mapped now.
func (m *Mapping) Release(off, n int64) {
	if m.ws != nil {
		m.ws.release(off, n)
		return
	}
	page := int64(unix.Getpagesize())
	start := (off + page - 1) &^ (page - 1)
	end := min(off+n, int64(len(m.data))) &^ (page - 1)
	if start < 0 || end <= start || m.inHeap {
		return
	}
	_ = unix.Madvise(m.data[start:end], unix.MADV_DONTNEED)
}

// Stat is the status of the file mapped, as it was when it was mapped
// (fstat of the descriptor mapped, not of a path looked up again).
func (m *Mapping) Stat() unix.Stat_t { return m.stat }

// Path is the file the mapping was made from.
func (m *Mapping) Path() string { return m.path }

// Size is the length of the file in bytes, when it was mapped.
func (m *Mapping) Size() int64 { return m.size }

// view returns the n bytes at off, mapped until the view is closed, or,
// once the mapping is sealed, a checked private copy of them. Reading a
// mapped view may fault if the file shrinks: see the package doc.
func (m *Mapping) view(off, n int64) (view, error) {
	if m.sealed != nil && n > 0 && off >= 0 && off <= m.size-n {
		return m.sealedView(off, n)
	}
	return m.rawView(off, n)
}

// rawView returns the n bytes at off as mapped.
func (m *Mapping) rawView(off, n int64) (view, error) {
	switch {
	case off < 0 || n < 0 || off > m.size-n:
		return view{}, fmt.Errorf("%s: %d bytes at offset %d are outside the %d-byte file", m.path, n, off, m.size)
	case n == 0:
		return view{}, nil
	case m.ws != nil:
		v, err := m.ws.view(off, n)
		if err != nil {
			return v, fmt.Errorf("map %s: %w", m.path, err)
		}
		return v, nil
	case m.data == nil:
		return view{}, fmt.Errorf("map %s: %w", m.path, errClosed)
	}
	return view{b: m.data[off : off+n]}, nil
}

// Close unmaps the file. It is safe to call more than once.
func (m *Mapping) Close() error {
	if m == nil {
		return nil
	}
	if f := m.file; f != nil {
		m.file = nil
		_ = f.Close() // read-only: nothing to flush; a read under way finishes first
	}
	if m.ws != nil {
		if err := m.ws.close(); err != nil {
			return fmt.Errorf("unmap %s: %w", m.path, err)
		}
		return nil
	}
	if m.data == nil {
		return nil
	}
	data := m.data
	m.data = nil
	if m.inHeap {
		return nil
	}
	if err := unix.Munmap(data); err != nil {
		return fmt.Errorf("unmap %s: %w", m.path, err)
	}
	return nil
}

// ReadAt implements io.ReaderAt over the mapping. A fault while copying
// (file truncated under the mapping) is returned as ErrFault, never a crash,
// whichever goroutine calls it.
func (m *Mapping) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", m.path, off)
	}
	if off >= m.size {
		return 0, io.EOF
	}
	want := len(p)
	p = p[:min(int64(len(p)), m.size-off)]
	n := 0
	for n < len(p) {
		chunk := int64(len(p) - n)
		if m.ws != nil {
			chunk = min(chunk, m.ws.win/2) // one window serves it
		}
		v, err := m.view(off+int64(n), chunk)
		if err != nil {
			return n, err
		}
		c, err := guardedCopy(p[n:], v.b)
		v.close()
		if err != nil {
			return n, fmt.Errorf("read %s at offset %d: %w", m.path, off+int64(n), err)
		}
		n += c
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// Reader reads a mapping sequentially, with faults turned into ErrFault,
// and releases the pages behind it so that reading a large file does not
// grow the process's resident size.
type Reader struct {
	m        *Mapping
	pos, end int64
	start    int64
	released int64
	cur      view // a sealed mapping's checked copy, from curOff
	curOff   int64
}

// releaseStep is how far a Reader reads before releasing what it has read.
const releaseStep = 4 << 20

// NewReader returns a Reader of the whole mapping.
func (m *Mapping) NewReader() *Reader { return m.NewRangeReader(0, m.Size()) }

// NewRangeReader returns a Reader of the n bytes at off.
func (m *Mapping) NewRangeReader(off, n int64) *Reader {
	return &Reader{m: m, pos: off, start: off, end: off + n, released: off}
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.pos >= r.end {
		return 0, io.EOF
	}
	if int64(len(p)) > r.end-r.pos {
		p = p[:r.end-r.pos]
	}
	var n int
	var err error
	if r.m.sealed != nil && r.m.sealed.sums != nil {
		n, err = r.readSealed(p)
	} else {
		n, err = r.m.ReadAt(p, r.pos)
	}
	r.pos += int64(n)
	if r.pos-r.released >= releaseStep {
		r.m.Release(r.released, r.pos-r.released)
		r.released = r.pos
	}
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// readSealed reads from checked copies of up to 16 chunks at a time, so
// that each chunk is copied and hashed once however small the reads.
func (r *Reader) readSealed(p []byte) (int, error) {
	if r.pos < r.curOff || r.pos >= r.curOff+int64(len(r.cur.b)) {
		r.cur.close()
		r.cur = view{}
		hi := min(r.end, (r.pos/sealChunk+16)*sealChunk)
		v, err := r.m.view(r.pos, hi-r.pos)
		if err != nil {
			return 0, fmt.Errorf("read %s at offset %d: %w", r.m.path, r.pos, err)
		}
		r.cur, r.curOff = v, r.pos
	}
	return copy(p, r.cur.b[r.pos-r.curOff:]), nil
}

// Offset is the number of bytes read so far.
func (r *Reader) Offset() int64 { return r.pos - r.start }

// guardedCopy copies src into dst like the builtin copy, but turns a
// memory fault while reading src into ErrFault. It is meant for views of a
// Mapping.
func guardedCopy(dst, src []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, faultError(r)
		}
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	return copy(dst, src), nil
}

// Guard runs fn with faults on this goroutine turned into ErrFault. Use it
// around code that reads Bytes directly, such as a decoder.
func Guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = faultError(r)
		}
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	return fn()
}

// faultError converts a recovered panic into an error. Only memory faults
// are expected here; anything else is re-raised because it is a bug, not bad
// input.
func faultError(r any) error {
	if e, ok := r.(interface{ Addr() uintptr }); ok {
		return fmt.Errorf("%w (fault address %#x)", ErrFault, e.Addr())
	}
	panic(r)
}

// smallFile is the size up to which MapFile reads a file rather than map
// it: unmapping (a TLB shootdown on every thread of the process) costs
// more than copying a few pages.
const smallFile = 64 << 10

// MapFile maps the open file f read-only; name is used in errors. f may be
// closed afterwards. A file larger than the window size (see
// SetWindowSize) is read through windows; otherwise a file of at most
// 64 KiB is read into memory instead, which then cannot change under the
// reader, and a larger one is mapped whole. A mapped file (whole or in
// windows) keeps a duplicate of f's descriptor, for DecodeFrame's
// copies.
func MapFile(f *os.File, name string) (*Mapping, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		return nil, notRegular(name, st.Mode())
	}
	size := st.Size()
	m := &Mapping{path: name, size: size}
	if err := unix.Fstat(int(f.Fd()), &m.stat); err != nil {
		return nil, fmt.Errorf("map %s: %w", name, err)
	}
	switch win := windowSize(); {
	case size == 0:
		return m, nil
	case win > 0 && size > win:
		if m.ws, err = newWindows(f, size, win); err != nil {
			return nil, fmt.Errorf("map %s: %w", name, err)
		}
		m.file = dupFile(f, name)
		return m, nil
	case size > math.MaxInt:
		return nil, fmt.Errorf("map %s: file too large to map (%d bytes)", name, size)
	case size <= smallFile:
		m.data, m.inHeap = make([]byte, size), true
		if _, err := f.ReadAt(m.data, 0); err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		return m, nil
	}
	if m.data, err = unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_PRIVATE); err != nil {
		return nil, fmt.Errorf("map %s: mmap: %w", name, err)
	}
	m.file = dupFile(f, name)
	return m, nil
}

// Copies reports whether DecodeFrame may read frames of m with pread(2)
// rather than through the mapping: not for a file read into memory, nor a
// sealed mapping (whose reads are checked copies), nor without a
// descriptor.
func (m *Mapping) Copies() bool { return m.file != nil && m.sealed == nil && !m.inHeap }

// copied fills buf with the bytes at off, read with pread(2). A file that
// shrank under the reader gives ErrFault, as a fault on the mapping would.
func (m *Mapping) copied(buf []byte, off int64) ([]byte, error) {
	n, err := m.file.ReadAt(buf, off)
	if n < len(buf) {
		if err == nil || err == io.EOF {
			err = ErrFault
		}
		return nil, fmt.Errorf("read %s at offset %d: %w", m.path, off, err)
	}
	return buf, nil
}

// dupFile returns a descriptor of f's own for copied, or nil when there
// is none to spare: DecodeFrame then reads through the mapping.
func dupFile(f *os.File, name string) *os.File {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), name)
}
