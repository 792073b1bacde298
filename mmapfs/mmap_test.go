package mmapfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestMap(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"small", []byte("hello")},
		{"pages", bytes.Repeat([]byte("0123456789abcdef"), 3000)}, // read: at most 64 KiB
		{"mapped", bytes.Repeat([]byte("0123456789abcdef"), 20000)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			os.WriteFile(p, c.data, 0o644)
			m, err := Map(p)
			if err != nil {
				t.Fatal(err)
			}
			if m.Size() != int64(len(c.data)) || m.Path() != p || m.ws != nil {
				t.Errorf("mapping of %d bytes at %s (windowed %v)", m.Size(), m.Path(), m.ws != nil)
			}
			if m.inHeap != (len(c.data) > 0 && len(c.data) <= smallFile) {
				t.Errorf("%d bytes: read into memory %v", len(c.data), m.inHeap)
			}
			got, err := io.ReadAll(io.NewSectionReader(m, 0, m.Size()))
			if err != nil || !bytes.Equal(got, c.data) {
				t.Errorf("ReadAt: %v", err)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if err := m.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestMapErrors(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{filepath.Join(dir, "missing"), dir} {
		if m, err := Map(p); err == nil {
			m.Close()
			t.Errorf("Map(%s) succeeded", p)
		}
	}
}

// TestTruncatedFile reads a mapping whose file was truncated: ReadAt, a
// Reader and a view read under Guard must report ErrFault instead of
// dying of SIGBUS.
func TestTruncatedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, bytes.Repeat([]byte{1}, 1<<20), 0o644)
	m, err := Map(p)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := m.ReadAt(buf, 1<<19); !errors.Is(err, ErrFault) {
		t.Errorf("ReadAt: %v, want ErrFault", err)
	}
	if _, err := io.Copy(io.Discard, m.NewRangeReader(8192, 4096)); !errors.Is(err, ErrFault) {
		t.Errorf("Reader: %v, want ErrFault", err)
	}
	v, err := m.view(0, m.Size())
	if err != nil {
		t.Fatal(err)
	}
	defer v.close()
	err = Guard(func() error {
		for _, b := range v.b {
			sink += b
		}
		return nil
	})
	if !errors.Is(err, ErrFault) {
		t.Errorf("Guard: %v, want ErrFault", err)
	}
}

// sink keeps the compiler from dropping a read loop.
var sink byte
