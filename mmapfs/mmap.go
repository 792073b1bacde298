// Package mmapfs maps image files read-only into memory.
//
// It is the base that berth's image code reads from: a Mapping is the whole
// file as one byte slice, advised for a sequential read. Memory of a mapped
// file can vanish under the reader — another process truncates the file and
// the next access raises SIGBUS — so every read path must either run on a
// goroutine that has called debug.SetPanicOnFault(true) and recovers, or go
// through ReadAt/Copy, which do that themselves and turn the fault into
// ErrFault.
package mmapfs

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// ErrFault reports that the mapped file could not be read: typically it was
// truncated while mapped.
var ErrFault = errors.New("mapped file changed under the reader (truncated?)")

// Mapping is a read-only, private mapping of a whole file.
type Mapping struct {
	path string
	data []byte
}

// Map maps the file at path read-only. An empty file gives a Mapping whose
// Bytes are empty. The file descriptor is closed before Map returns: the
// mapping keeps the file's pages alive on its own.
func Map(path string) (*Mapping, error) {
	f, err := os.Open(path) // O_CLOEXEC
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("map %s: not a regular file", path)
	}
	size := st.Size()
	if size == 0 {
		return &Mapping{path: path}, nil
	}
	if size > math.MaxInt {
		return nil, fmt.Errorf("map %s: file too large to map (%d bytes)", path, size)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("map %s: mmap: %w", path, err)
	}
	// Advice is a hint; a kernel that ignores it costs speed, not safety.
	_ = unix.Madvise(data, unix.MADV_SEQUENTIAL)
	_ = unix.Madvise(data, unix.MADV_WILLNEED)
	return &Mapping{path: path, data: data}, nil
}

// Path is the file the mapping was made from.
func (m *Mapping) Path() string { return m.path }

// Size is the length of the mapping in bytes.
func (m *Mapping) Size() int64 { return int64(len(m.data)) }

// Bytes is the mapped file. Reading it may fault if the file shrinks: see the
// package doc. The slice is invalid after Close.
func (m *Mapping) Bytes() []byte { return m.data }

// Close unmaps the file. It is safe to call more than once.
func (m *Mapping) Close() error {
	if m == nil || m.data == nil {
		return nil
	}
	data := m.data
	m.data = nil
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
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n, err := Copy(p, m.data[off:])
	if err != nil {
		return n, fmt.Errorf("read %s at offset %d: %w", m.path, off, err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Copy copies src into dst like the builtin copy, but turns a memory fault
// while reading src into ErrFault. It is meant for slices of a Mapping.
func Copy(dst, src []byte) (n int, err error) {
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
