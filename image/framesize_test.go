package image

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackFrameSize packs with frame sizes at and past the ends of the
// range: 0 is the default; one outside 64 KiB to 512 MiB is refused,
// saying what is taken, before anything is written (-1 and 1 were once
// raised to 64 KiB without a word).
func TestPackFrameSize(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		size int
		ok   bool
	}{
		{0, true},
		{64 << 10, true},
		{512 << 20, true},
		{-1, false},
		{1, false},
		{64<<10 - 1, false},
		{512<<20 + 1, false},
		{math.MaxInt, false},
	} {
		out := filepath.Join(dir, "out.tar.zst")
		os.Remove(out)
		err := Pack(src, out, PackOptions{FrameSize: tc.size})
		_, serr := os.Stat(out)
		switch {
		case tc.ok && (err != nil || serr != nil):
			t.Errorf("frame size %d: %v, %v", tc.size, err, serr)
		case tc.ok:
		case err == nil || !strings.Contains(err.Error(), "want 0 (the default, 4 MiB) or 65536 (64 KiB) to 536870912 (512 MiB) bytes"):
			t.Errorf("frame size %d: %v, want it refused", tc.size, err)
		case serr == nil:
			t.Errorf("frame size %d: refused, but %s was written", tc.size, out)
		}
	}
}
