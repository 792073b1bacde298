package image

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestProgress packs and unpacks a tree of 200 files with progress lines
// asked for (at every 32nd entry, the interval set to 0): each line names
// the verb, a growing entry count no larger than the tree's and the MiB so
// far.
func TestProgress(t *testing.T) {
	every := progressEvery
	progressEvery = 0
	t.Cleanup(func() { progressEvery = every })
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	const files = 200
	for i := range files {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%03d", i)), bytes.Repeat([]byte{byte(i)}, 16<<10), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "img.tar.zst")
	var packed, unpacked bytes.Buffer
	if err := Pack(src, img, PackOptions{Progress: &packed}); err != nil {
		t.Fatal(err)
	}
	if _, err := Unpack(img, filepath.Join(t.TempDir(), "dest"), UnpackOptions{Progress: &unpacked}); err != nil {
		t.Fatal(err)
	}
	for verb, out := range map[string]string{"packing": packed.String(), "unpacking": unpacked.String()} {
		lines := regexp.MustCompile(`(?m)^`+verb+`: (\d+) entries, (\d+\.\d) MiB`).FindAllStringSubmatch(out, -1)
		if len(lines) < files/32 {
			t.Errorf("%s: %d progress lines, want at least %d:\n%s", verb, len(lines), files/32, out)
			continue
		}
		last := 0
		for _, l := range lines {
			n, _ := strconv.Atoi(l[1])
			if n <= last || n > files+1 {
				t.Errorf("%s: entry counts %d after %d (the tree has %d entries)", verb, n, last, files+1)
			}
			last = n
		}
		if mib := lines[len(lines)-1][2]; mib == "0.0" {
			t.Errorf("%s: the last line shows %s MiB", verb, mib)
		}
	}
}
