package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestImagePackFrameSize: a --frame-size outside 64 KiB to 512 MiB (0
// is the default) is a usage error, status 2 with the range and a hint;
// -1 and 1 were once raised to 64 KiB without a word, and 2^40 was
// status 1 with no hint.
func TestImagePackFrameSize(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "src/etc/hostname"), "box\n")
	out := filepath.Join(dir, "out.tar.zst")
	for _, tc := range []struct {
		size   string
		status int
	}{
		{"0", 0},
		{"65536", 0},
		{"-1", 2},
		{"1", 2},
		{"65535", 2},
		{"536870913", 2},
		{"1099511627776", 2},
	} {
		status, _, stderr := berth(t, "image", "pack", filepath.Join(dir, "src"), "-o", out, "--frame-size", tc.size)
		want := "berth image pack: --frame-size " + tc.size + ": want 0 (the default, 4 MiB) or 65536 (64 KiB) to 536870912 (512 MiB) bytes\nrun 'berth image pack -h' for usage"
		if status != tc.status || tc.status == 2 && !strings.Contains(stderr, want) {
			t.Errorf("--frame-size %s: status %d, stderr %q; want %d", tc.size, status, stderr, tc.status)
		}
	}
}
