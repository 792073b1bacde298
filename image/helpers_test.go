package image

import (
	"encoding/binary"
	"os"
	"sync"
	"testing"

	"berth/mmapfs"

	"github.com/klauspost/compress/zstd"
)

// testEncoder is shared by every berthFromTar (EncodeAll may run
// concurrently): a fresh encoder per call would cost the fuzzers most of
// their time.
var testEncoder = sync.OnceValue(func() *zstd.Encoder {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		panic(err)
	}
	return enc
})

// berthFromTar frames a raw tar stream as a berth image (zstd frames of
// frameSize bytes cut anywhere, with checksums, and a seek table), the way
// a hostile image could be built: no index, no checks on the tar.
func berthFromTar(t testing.TB, raw []byte, frameSize int) []byte {
	t.Helper()
	enc := testEncoder()
	var out []byte
	var frames []mmapfs.Frame
	for len(raw) > 0 {
		n := min(frameSize, len(raw))
		c := enc.EncodeAll(raw[:n], nil)
		frames = append(frames, mmapfs.Frame{CSize: uint32(len(c)), DSize: uint32(n), Checksum: binary.LittleEndian.Uint32(c[len(c)-4:])})
		out = append(out, c...)
		raw = raw[n:]
	}
	return mmapfs.AppendSeekTable(out, frames)
}

// unpackModes are the ways a tar reaches the extractor: streamed, framed
// as a berth image with writers or without, read through windows of 8 KiB
// as on 32-bit platforms, and with the fallback for kernels without
// openat2.
var unpackModes = []struct {
	name    string
	berth   bool
	writers int
	window  int64
	noOpen2 bool
}{
	{name: "tar"},
	{name: "berth", berth: true},
	{name: "berth 1 writer", berth: true, writers: 1},
	{name: "berth 3 writers", berth: true, writers: 3},
	{name: "berth windows", berth: true, window: 8 << 10},
	{name: "tar without openat2", noOpen2: true},
}

// withWindows makes the files mapped during the test that are larger than
// n bytes read through windows of n bytes, as on 32-bit platforms.
func withWindows(t testing.TB, n int64) {
	old := mmapfs.SetWindowSize(n)
	t.Cleanup(func() { mmapfs.SetWindowSize(old) })
}

// unpackMode writes the tar at arc in mode's form beside it and unpacks it
// into dest.
func unpackMode(t *testing.T, arc, dest string, mode int, opts UnpackOptions) (Stats, error) {
	t.Helper()
	m := unpackModes[mode]
	src := arc
	if m.berth {
		raw, err := os.ReadFile(arc)
		if err != nil {
			t.Fatal(err)
		}
		src = arc + ".berth"
		if err := os.WriteFile(src, berthFromTar(t, raw, 700), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if m.noOpen2 {
		noOpenat2.Store(true)
		defer noOpenat2.Store(false)
	}
	if m.window > 0 {
		old := mmapfs.SetWindowSize(m.window)
		defer mmapfs.SetWindowSize(old)
	}
	opts.Writers = m.writers
	return Unpack(src, dest, opts)
}
