package image

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"strings"
	"testing"

	"berth/mmapfs"

	"github.com/klauspost/compress/zstd"
)

// TestMemoryShare checks the memory-scaled defaults at their edges: the
// floor, the power of two below a share, and the ceiling.
func TestMemoryShare(t *testing.T) {
	const MiB = 1 << 20
	cases := []struct {
		mem, window, frame uint64
	}{
		{0, 128 * MiB, 32 * MiB},         // unknown: the fixed defaults
		{1, 8 * MiB, 4 * MiB},            // below every share: the floors
		{64 * MiB, 8 * MiB, 4 * MiB},     // a 64 MB board
		{128 * MiB, 16 * MiB, 4 * MiB},   // the first window over the floor
		{256 * MiB, 32 * MiB, 8 * MiB},   // the first frame over the floor
		{1023 * MiB, 64 * MiB, 16 * MiB}, // just under 1 GiB: rounded down
		{1024 * MiB, 128 * MiB, 32 * MiB},
		{24 << 30, 128 * MiB, 32 * MiB}, // the ceilings
	}
	for _, c := range cases {
		l := Limits{}.memoryDefaults(c.mem)
		if l.MaxWindow != c.window || uint64(l.MaxFrameBytes) != c.frame {
			t.Errorf("memory %d MiB: window %d MiB, frame %d MiB; want %d and %d",
				c.mem>>20, l.MaxWindow>>20, l.MaxFrameBytes>>20, c.window>>20, c.frame>>20)
		}
	}
	set := Limits{MaxWindow: 1 << 30, MaxFrameBytes: 1 << 10}.memoryDefaults(64 * MiB)
	if set.MaxWindow != 1<<30 || set.MaxFrameBytes != 1<<10 {
		t.Errorf("limits that were set changed: %+v", set)
	}
}

// zstdStream is a one-file tar in a zstd frame without a content size
// whose header asks for window bytes (a power of two).
func zstdStream(t *testing.T, window int) []byte {
	t.Helper()
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5})
	tw.Write([]byte("hello"))
	tw.Close()
	// Magic, a descriptor with neither content size nor single segment,
	// the window descriptor (exponent: log2 of the window less 10), and
	// one last raw block holding the tar.
	b := binary.LittleEndian.AppendUint32(nil, mmapfs.ZstdFrameMagic)
	b = append(b, 0x00, byte(bits.Len(uint(window))-1-10)<<3)
	n := plain.Len()
	b = append(b, byte(n<<3|1), byte(n>>5), byte(n>>13))
	out := bytes.NewBuffer(append(b, plain.Bytes()...))
	var h zstd.Header
	if err := h.Decode(out.Bytes()); err != nil || h.WindowSize != uint64(window) {
		t.Fatalf("frame header: window %d, %v; want %d", h.WindowSize, err, window)
	}
	return out.Bytes()
}

// TestWindowFollowsMemory unpacks streams asking for windows at and just
// past the default limit of a 64 MB board: the first unpacks, the second
// is refused before its decoder allocates, with an error that names the
// limit, where it comes from and what to do.
func TestWindowFollowsMemory(t *testing.T) {
	board := Limits{}.memoryDefaults(64 << 20)
	if _, err := unpackBytes(t, zstdStream(t, 8<<20), UnpackOptions{Limits: board}); err != nil {
		t.Fatalf("window 8 MiB on a 64 MiB machine: %v", err)
	}
	_, err := unpackBytes(t, zstdStream(t, 16<<20), UnpackOptions{Limits: board})
	if !errors.Is(err, zstd.ErrWindowSizeExceeded) {
		t.Fatalf("window 16 MiB on a 64 MiB machine: error %v, want the window refused", err)
	}
	for _, want := range []string{"limit of 8 MiB", "64 MiB of memory", "--long"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The same stream where the fixed default applies (1 GiB and more).
	if _, err := unpackBytes(t, zstdStream(t, 16<<20), UnpackOptions{Limits: Limits{}.memoryDefaults(1 << 30)}); err != nil {
		t.Fatalf("window 16 MiB on a 1 GiB machine: %v", err)
	}
}
