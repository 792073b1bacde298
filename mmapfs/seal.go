package mmapfs

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrChanged reports that bytes of a sealed mapping differ from those its
// Seal hashed: the file was written after it was verified.
var ErrChanged = errors.New("changed since it was verified")

// sealChunk is the unit Seal hashes on its own and a sealed mapping
// checks: small enough that a frame's view copies little more than the
// frame, large enough that the hashes of a 1 GiB image take 512 KiB.
const sealChunk = 64 << 10

// sealCopyMax is the largest file Seal copies whole (8 MiB) into memory, hashed
// once and read from there, rather than hashing it by chunks to check
// each read (a second hash of every chunk while sealing, a third as it
// is read): the images a board boots are mostly this small, and where
// sha256 is slow (no SHA extensions, an emulator) the passes cost more
// than the copy.
var sealCopyMax int64 = 8 << 20

// SetSealCopyMax sets the largest file Seal copies whole and returns the
// previous value. It is a test hook (0 seals every file by chunks), to be
// called while no Seal runs.
func SetSealCopyMax(n int64) int64 {
	old := sealCopyMax
	sealCopyMax = n
	return old
}

// copyMax is the largest file Seal copies whole on this machine:
// sealCopyMax, and no more than a sixteenth of the RAM (4 MiB on a 64 MB
// board, whose boot may hold a quarter of it in its heap).
func copyMax() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return min(sealCopyMax, int64(uint64(si.Totalram)*uint64(si.Unit)/16))
}

// readIntoHeap replaces the mapping of the file by a copy of it in memory.
func (m *Mapping) readIntoHeap() error {
	buf := make([]byte, m.size)
	for off := int64(0); off < m.size; off += sealChunk {
		if err := m.copyRaw(buf[off:min(off+sealChunk, m.size)], off); err != nil {
			return err
		}
	}
	if err := m.Close(); err != nil {
		return err
	}
	m.data, m.inHeap, m.ws = buf, true, nil
	return nil
}

// seal is what a sealed mapping checks its reads against.
type seal struct {
	sums [][sha256.Size]byte // of each sealChunk of the file; nil when the file is in the heap
	bufs sync.Pool           // *[]byte of views, reused
}

// Seal reads the whole file once, a chunk at a time into private memory
// (or whole, up to sealCopyMax), and returns the sha256 of its bytes. From then on every read of the
// mapping — ReadAt, a Reader, DecodeFrame, an FS — is served from a private
// copy of the chunks it covers, each checked against its hash from that
// same pass: a reader gets, byte for byte, what Seal hashed, or an error
// wrapping ErrChanged, whoever writes the file meanwhile. Without it a
// mapping shows the file as it is at each read, so a digest or signature
// checked first would not bind the bytes read after (a check, then a
// rewrite, then a use). Sealing costs a second hash of each chunk read and
// a copy; call it once, before any other read that must be trusted.
func (m *Mapping) Seal() (sum [sha256.Size]byte, err error) {
	if m.sealed != nil {
		return sum, fmt.Errorf("seal %s: sealed already", m.path)
	}
	s := &seal{}
	h := sha256.New()
	if !m.inHeap && m.size > 0 && m.size <= copyMax() {
		if err := m.readIntoHeap(); err != nil {
			return sum, fmt.Errorf("seal %s: %w", m.path, err)
		}
	}
	if m.inHeap || m.size == 0 { // a private copy
		h.Write(m.data)
		m.sealed = s
		return [sha256.Size]byte(h.Sum(nil)), nil
	}
	s.sums = make([][sha256.Size]byte, (m.size+sealChunk-1)/sealChunk)
	buf := make([]byte, sealChunk)
	for i := range s.sums {
		off := int64(i) * sealChunk
		n := min(sealChunk, m.size-off)
		if err := m.copyRaw(buf[:n], off); err != nil {
			return sum, fmt.Errorf("seal %s: %w", m.path, err)
		}
		h.Write(buf[:n])
		s.sums[i] = sha256.Sum256(buf[:n])
		m.Release(off, n)
	}
	m.sealed = s
	return [sha256.Size]byte(h.Sum(nil)), nil
}

// copyRaw copies the len(p) bytes at off from the file, as mapped now.
func (m *Mapping) copyRaw(p []byte, off int64) error {
	v, err := m.rawView(off, int64(len(p)))
	if err != nil {
		return err
	}
	defer v.close()
	if _, err := guardedCopy(p, v.b); err != nil {
		return fmt.Errorf("read at offset %d: %w", off, err)
	}
	return nil
}

// sealedView returns the n bytes at off from a private copy of the chunks
// that hold them, each checked against Seal's hash.
func (m *Mapping) sealedView(off, n int64) (view, error) {
	s := m.sealed
	if s.sums == nil {
		if m.data == nil {
			return view{}, fmt.Errorf("map %s: %w", m.path, errClosed)
		}
		return view{b: m.data[off : off+n]}, nil
	}
	lo := off / sealChunk * sealChunk
	hi := min((off+n+sealChunk-1)/sealChunk*sealChunk, m.size)
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil || int64(cap(*bp)) < hi-lo {
		bp = new([]byte)
		*bp = make([]byte, hi-lo)
	}
	buf := (*bp)[:hi-lo]
	if err := m.copyRaw(buf, lo); err != nil {
		s.bufs.Put(bp)
		return view{}, err
	}
	for c := lo; c < hi; c += sealChunk {
		chunk := buf[c-lo : min(c-lo+sealChunk, hi-lo)]
		if sha256.Sum256(chunk) != s.sums[c/sealChunk] {
			s.bufs.Put(bp)
			return view{}, fmt.Errorf("%s: bytes %d to %d %w", m.path, c, c+int64(len(chunk)), ErrChanged)
		}
	}
	m.Release(lo, hi-lo)
	return view{b: buf[off-lo:][:n], pool: &s.bufs, buf: bp}, nil
}

// Sealed reports whether Seal has been called.
func (m *Mapping) Sealed() bool { return m.sealed != nil }
