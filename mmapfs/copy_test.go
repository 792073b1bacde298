package mmapfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// framedFile writes frames of zstd (with checksums) of random text to a
// file larger than smallFile and returns its path, the table and the
// frames' contents.
func framedFile(t *testing.T) (string, *SeekTable, [][]byte) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewChaCha8([32]byte{3}))
	st := &SeekTable{HasChecksums: true}
	var file []byte
	var plain [][]byte
	for i := range 4 {
		p := make([]byte, 100<<10+i*7777)
		for j := range p {
			p[j] = "abcdefgh"[r.IntN(8)]
		}
		z := enc.EncodeAll(p, nil)
		st.Offsets = append(st.Offsets, int64(len(file)))
		st.Frames = append(st.Frames, Frame{CSize: uint32(len(z)), DSize: uint32(len(p)), Checksum: binary.LittleEndian.Uint32(z[len(z)-4:])})
		file = append(file, z...)
		plain = append(plain, p)
	}
	path := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, st, plain
}

// mappedFrames maps a framedFile and makes a decoder for it, both closed
// when the test ends (the mapping may be closed before).
func mappedFrames(t *testing.T) (string, *SeekTable, *zstd.Decoder, *Mapping) {
	path, st, _ := framedFile(t)
	dec, err := NewDecoder(1<<20, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dec.Close)
	m, err := Map(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return path, st, dec, m
}

// TestDecodeFrameCopies decodes every frame through the mapping (no src),
// from a copy (src large enough) and through the mapping again when src
// is too small for the frame: the same bytes each way; and the mappings
// that must not be read around (a file read into memory, a sealed one)
// say so.
func TestDecodeFrameCopies(t *testing.T) {
	path, st, plain := framedFile(t)
	file, _ := os.ReadFile(path)
	dec, err := NewDecoder(1<<20, 1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, win := range []int64{0, 128 << 10} {
		if win > 0 {
			withWindows(t, win)
		}
		m, err := Map(path)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Copies() {
			t.Fatalf("windows %d: a mapped file does not copy", win)
		}
		for i, f := range st.Frames {
			for _, src := range [][]byte{nil, make([]byte, 0, 1<<20), make([]byte, 0, f.CSize-1)} {
				out, err := DecodeFrame(dec, m, st, i, nil, src)
				if err != nil || !bytes.Equal(out, plain[i]) {
					t.Errorf("windows %d: frame %d with a %d-byte src: %v", win, i, cap(src), err)
				}
				// The frame was read into src only if it fits.
				k := min(cap(src), int(f.CSize))
				copied := bytes.Equal(src[:k], file[st.Offsets[i]:][:k])
				if k > 0 && copied != (cap(src) >= int(f.CSize)) {
					t.Errorf("windows %d: frame %d with a %d-byte src: copied %v", win, i, cap(src), copied)
				}
			}
		}
		m.Close()
	}
	small := filepath.Join(t.TempDir(), "small")
	os.WriteFile(small, []byte("hello"), 0o644)
	defer SetSealCopyMax(SetSealCopyMax(0))
	for name, p := range map[string]string{"read into memory": small, "sealed": path} {
		m, err := Map(p)
		if err != nil {
			t.Fatal(err)
		}
		if name == "sealed" {
			if _, err := m.Seal(); err != nil {
				t.Fatal(err)
			}
		}
		if m.Copies() {
			t.Errorf("%s: copies", name)
		}
		m.Close()
	}
}

// TestDecodeFrameCopyShrunk: a frame copied out of a file that shrank
// under the reader fails with ErrFault, as a fault on the mapping does,
// and a closed mapping decodes nothing.
func TestDecodeFrameCopyShrunk(t *testing.T) {
	path, st, dec, m := mappedFrames(t)
	src := make([]byte, 0, 1<<20)
	file, _ := os.ReadFile(path)
	if err := os.Truncate(path, st.Offsets[2]+10); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeFrame(dec, m, st, 2, nil, src); !errors.Is(err, ErrFault) {
		t.Errorf("frame 2 cut short: %v, want ErrFault", err)
	}
	if head := file[st.Offsets[2]:][:10]; !bytes.Equal(src[:10], head) {
		t.Error("frame 2 was not read with pread")
	}
	if _, err := DecodeFrame(dec, m, st, 1, nil, src); err != nil {
		t.Errorf("frame 1, whole: %v", err)
	}
	m.Close()
	if _, err := DecodeFrame(dec, m, st, 1, nil, src); err == nil {
		t.Error("decoded a frame of a closed mapping")
	}
}

// TestDecodeFrameSealedNotCopied: a sealed mapping's frames are read
// through its checked copies even when src could hold them, so a byte
// rewritten after the seal is refused (ErrChanged), not decoded from a
// fresh read of the file.
func TestDecodeFrameSealedNotCopied(t *testing.T) {
	defer SetSealCopyMax(SetSealCopyMax(0))
	path, st, dec, m := mappedFrames(t)
	if _, err := m.Seal(); err != nil {
		t.Fatal(err)
	}
	file, _ := os.ReadFile(path)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{file[st.Offsets[1]+100] ^ 0xff}, st.Offsets[1]+100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	src := make([]byte, 0, 1<<20)
	if _, err := DecodeFrame(dec, m, st, 1, nil, src); !errors.Is(err, ErrChanged) {
		t.Errorf("frame 1 rewritten after the seal: %v, want ErrChanged", err)
	}
	if !bytes.Equal(src[:cap(src)], make([]byte, cap(src))) {
		t.Error("the sealed frame was read into src")
	}
}
