package mmapfs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSeal: Seal returns the file's sha256; after it, reads of unchanged
// bytes give them, through ReadAt, a Reader and a view, whole or
// windowed; a read that covers bytes written since is refused with
// ErrChanged, before any of them reach the reader, and reads of other
// chunks still work.
func TestSeal(t *testing.T) {
	defer SetSealCopyMax(SetSealCopyMax(0))
	for _, win := range []int64{0, 256 << 10} {
		if win > 0 {
			withWindows(t, win)
		}
		p, data := randomFile(t, 1<<20+1234)
		m, err := Map(p)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		sum, err := m.Seal()
		if err != nil || sum != sha256.Sum256(data) {
			t.Fatalf("windows %d: Seal = %x, %v; want the file's sha256", win, sum, err)
		}
		if _, err := m.Seal(); err == nil {
			t.Errorf("windows %d: sealed twice", win)
		}
		got, err := io.ReadAll(m.NewReader())
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("windows %d: Reader: %d bytes, %v", win, len(got), err)
		}
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte{data[700000] ^ 1}, 700000) // chunk 10
		f.Close()
		buf := make([]byte, 100)
		if _, err := m.ReadAt(buf, 699950); !errors.Is(err, ErrChanged) {
			t.Errorf("windows %d: ReadAt over the change: %v", win, err)
		}
		if n, err := m.ReadAt(buf, 10*sealChunk-100); err != nil || n != 100 || !bytes.Equal(buf, data[10*sealChunk-100:10*sealChunk]) {
			t.Errorf("windows %d: ReadAt of the chunk before: %d, %v", win, n, err)
		}
		if _, err := io.ReadAll(m.NewRangeReader(600000, 200000)); !errors.Is(err, ErrChanged) {
			t.Errorf("windows %d: Reader over the change: %v", win, err)
		}
		if v, err := m.view(699999, 2); !errors.Is(err, ErrChanged) {
			t.Errorf("windows %d: view over the change: %x, %v", win, v.b, err)
		}
		if got, err := io.ReadAll(m.NewRangeReader(11*sealChunk, m.Size()-11*sealChunk)); err != nil || !bytes.Equal(got, data[11*sealChunk:]) {
			t.Errorf("windows %d: Reader after the change: %d bytes, %v", win, len(got), err)
		}
	}
}

// TestSealSmallFile: a file read into memory (under 64 KiB), or copied
// there by Seal (up to sealCopyMax), is its own private copy: Seal hashes
// it and the bytes read after are those, whatever the file holds by then.
func TestSealSmallFile(t *testing.T) {
	for _, size := range []int{1000, 1 << 20} {
		sealSmall(t, size)
	}
}

func sealSmall(t *testing.T, size int) {
	p, data := randomFile(t, size)
	m, err := Map(p)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if sum, err := m.Seal(); err != nil || sum != sha256.Sum256(data) {
		t.Fatalf("Seal = %x, %v", sum, err)
	}
	os.WriteFile(p, make([]byte, size), 0o644)
	got, err := io.ReadAll(m.NewReader())
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("%d bytes: Reader after the file changed: %v", size, err)
	}
}

// TestCopyMax: Seal copies a file of copyMax() bytes whole and seals one
// byte more by chunks; copyMax is 8 MiB and no more than a sixteenth of
// the RAM.
func TestCopyMax(t *testing.T) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	limit := copyMax()
	if ram := int64(uint64(si.Totalram) * uint64(si.Unit)); limit > 8<<20 || limit > ram/16 || limit <= 0 {
		t.Fatalf("copyMax = %d with %d bytes of RAM", limit, ram)
	}
	for _, size := range []int64{limit, limit + 1} {
		p, _ := randomFile(t, int(size))
		m, err := Map(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Seal(); err != nil {
			t.Fatal(err)
		}
		if whole := m.sealed.sums == nil; whole != (size <= limit) {
			t.Errorf("%d bytes (copyMax %d): copied whole %v", size, limit, whole)
		}
		m.Close()
	}
}
