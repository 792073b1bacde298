package image

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"berth/mmapfs"
)

// TestWindowed runs the tests that read images through mappings —
// unpacking, mmapfs, damaged images and images truncated under the
// reader — with windows far smaller than the images, as on 32-bit
// platforms: frames straddle the halves and ends of windows, are longer
// than half a window, and the index and the seek table lie at the end.
func TestWindowed(t *testing.T) {
	tests := []struct {
		name string
		run  func(*testing.T)
	}{
		{"RoundTrip", TestRoundTrip}, {"FS", TestFS}, {"FSReads", TestFSReads}, {"FSSparse", TestFSSparse},
		{"FSDamaged", TestFSDamaged}, {"TruncatedUnderMapping", TestTruncatedUnderMapping},
		{"SeekTableWithIndexFrame", TestSeekTableWithIndexFrame},
	}
	for _, size := range []int64{8 << 10, 64 << 10} {
		t.Run(fmt.Sprintf("%dKiB", size>>10), func(t *testing.T) {
			withWindows(t, size)
			for _, c := range tests {
				t.Run(c.name, c.run)
			}
		})
	}
}

// TestWindowedFSConcurrent reads random ranges of an image's files from
// several goroutines through one FS whose image is read through windows
// of 64 KiB, with an index longer than a window: every read gives the
// source's bytes, and the process never has more than four windows of
// the image mapped (/proc/self/maps).
func TestWindowedFSConcurrent(t *testing.T) {
	withWindows(t, 64<<10)
	dir := t.TempDir()
	src := filepath.Join(dir, "tree")
	files := map[string][]byte{}
	rng := rand.NewChaCha8([32]byte{3})
	for i := range 6 {
		data := make([]byte, 150<<10+i*61<<10)
		rng.Read(data)
		files[fmt.Sprintf("data/f%d", i)] = data
	}
	for i := range 2000 { // an index of about 190 KB
		files[fmt.Sprintf("many/entry-with-a-longish-name-%04d", i)] = []byte{byte(i)}
	}
	for name, data := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "img")
	if err := Pack(src, img, PackOptions{FrameSize: testFrameSize}); err != nil {
		t.Fatal(err)
	}
	if n := indexBytes(t, img); n < 128<<10 {
		t.Fatalf("index of %d bytes: not longer than two windows", n)
	}
	fsys, err := mmapfs.OpenFS(img, mmapfs.Options{CacheBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	names := []string{"data/f0", "data/f1", "data/f2", "data/f3", "data/f4", "data/f5", "many/entry-with-a-longish-name-1999"}
	// Random reads, from 6 goroutines at once, then from one, which
	// looks at the process's mappings after each.
	read := func(r *rand.Rand) error {
		name := names[r.IntN(len(names))]
		want := files[name]
		off := r.Int64N(int64(len(want)))
		buf := make([]byte, r.Int64N(200<<10))
		f, err := fsys.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := f.(io.ReaderAt).ReadAt(buf, off)
		end := min(off+int64(len(buf)), int64(len(want)))
		if !bytes.Equal(buf[:n], want[off:end]) || (err != nil) != (n < len(buf)) {
			return fmt.Errorf("%s: %d bytes at %d: got %d (%v), want %d", name, len(buf), off, n, err, end-off)
		}
		return nil
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 150 {
				if err := read(r); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	r := rand.New(rand.NewPCG(7, 1))
	for range 100 {
		if err := read(r); err != nil {
			t.Fatal(err)
		}
		if mapped := mappedBytes(t, img); mapped == 0 || mapped > 4*64<<10 {
			t.Fatalf("%d bytes of the image mapped: want one to four windows", mapped)
		}
	}
}

// mappedBytes is how much of the file at p this process has mapped.
func mappedBytes(t *testing.T, p string) int64 {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, line := range strings.Split(string(b), "\n") {
		var lo, hi uint64
		if strings.HasSuffix(line, " "+p) {
			fmt.Sscanf(line, "%x-%x", &lo, &hi)
			sum += int64(hi - lo)
		}
	}
	return sum
}

// indexBytes is the size of the index frame's payload of the image at p.
func indexBytes(t *testing.T, p string) int64 {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := mmapfs.ParseSeekTable(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Skippable {
		if s.Magic == mmapfs.IndexFrameMagic {
			return s.Payload[1] - s.Payload[0]
		}
	}
	t.Fatal("no index")
	return 0
}
