package board

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// countingReader counts the reads that reach the file.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// TestDecompressModule decompresses a module of Debian's amd64 kernel
// package, compressed here as .xz, .zst and .gz, back to the .ko, reading
// the file in buffered chunks: u-root's kmodule reads a .ko.xz one byte per
// read(2), 121,411 reads for Debian 13's overlay.ko.xz.
func TestDecompressModule(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	kos, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "..", ".cache", "deb", "amd64", "linux-image", "lib", "modules", "*", "kernel", "fs", "overlayfs", "overlay.ko"))
	if len(kos) != 1 {
		t.Fatal("no overlay.ko: run make fetch-amd64")
	}
	want, err := os.ReadFile(kos[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ ext, tool string }{{".xz", "xz"}, {".zst", "zstd"}, {".gz", "gzip"}} {
		t.Run(c.ext, func(t *testing.T) {
			compressed, err := exec.Command(c.tool, "-c", kos[0]).Output()
			if err != nil {
				t.Fatalf("%s: %v", c.tool, err)
			}
			cr := &countingReader{r: bytes.NewReader(compressed)}
			got, err := decompressModule(cr, "overlay.ko"+c.ext)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("decompressed %d bytes differ from the %d of overlay.ko", len(got), len(want))
			}
			if max := len(compressed)/(64<<10) + 3; cr.reads > max {
				t.Errorf("%d reads of a %d-byte file, want at most %d", cr.reads, len(compressed), max)
			}
		})
	}
	for _, bad := range []struct{ name, data string }{
		{"overlay.ko.xz", "not xz"}, {"overlay.ko.zst", "not zstd"}, {"overlay.ko.gz", "not gzip"}, {"overlay.ko.bz2", ""},
	} {
		if _, err := decompressModule(bytes.NewReader([]byte(bad.data)), bad.name); err == nil {
			t.Errorf("%s holding %q decompressed", bad.name, bad.data)
		}
	}
}
