package image

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testFrameSize makes small trees span several frames.
const testFrameSize = 64 << 10

// packTree packs a fresh test tree and returns its snapshot (without the
// socket) and the image path.
func packTree(t *testing.T) (map[string]node, string) {
	t.Helper()
	dir := t.TempDir()
	src := makeTree(t, dir)
	want := withoutSocket(snapshot(t, src))
	img := filepath.Join(dir, "img.tar.zst")
	var log bytes.Buffer
	if err := Pack(src, img, PackOptions{FrameSize: testFrameSize, Log: &log}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "skipping socket") {
		t.Errorf("no warning for the socket; log: %q", log.String())
	}
	return want, img
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// TestRoundTrip packs a tree and reads it back with berth and with the
// standard tools: each must give the same tree.
func TestRoundTrip(t *testing.T) {
	want, img := packTree(t)
	readers := []struct {
		name   string
		unpack func(t *testing.T, dest string)
	}{
		{"berth", func(t *testing.T, dest string) {
			st, err := Unpack(img, dest, UnpackOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Format != FormatBerth || st.Frames < 4 || st.Entries != len(want) {
				t.Errorf("stats %+v: want berth format, ≥ 4 frames, %d entries", st, len(want))
			}
		}},
		{"berth over an earlier unpack", func(t *testing.T, dest string) {
			for range 2 {
				if _, err := Unpack(img, dest, UnpackOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"berth-1-worker", func(t *testing.T, dest string) {
			if _, err := Unpack(img, dest, UnpackOptions{Workers: 1}); err != nil {
				t.Fatal(err)
			}
		}},
		{"berth-streamed", func(t *testing.T, dest string) { // frames over the limit: streamed
			if _, err := Unpack(img, dest, UnpackOptions{Limits: Limits{MaxFrameBytes: 1024}}); err != nil {
				t.Fatal(err)
			}
		}},
		{"tar --zstd -xf", func(t *testing.T, dest string) {
			run(t, "tar", "--zstd", "-xf", img, "-C", dest)
		}},
		{"zstd -d, tar -xf", func(t *testing.T, dest string) {
			plain := filepath.Join(t.TempDir(), "img.tar")
			run(t, "zstd", "-q", "-d", img, "-o", plain)
			run(t, "tar", "-xf", plain, "-C", dest)
		}},
	}
	for _, r := range readers {
		t.Run(r.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "dest")
			if err := os.Mkdir(dest, 0o700); err != nil {
				t.Fatal(err)
			}
			r.unpack(t, dest)
			compareTrees(t, want, snapshot(t, dest))
		})
	}
}

// TestUnpackGNUTar unpacks what GNU tar writes, in each compression.
func TestUnpackGNUTar(t *testing.T) {
	dir := t.TempDir()
	src := makeTree(t, dir)
	want := withoutSocket(snapshot(t, src))
	cases := []struct {
		file, flag, format string
	}{
		{"gnu.tar", "", FormatTar},
		{"gnu.tar.gz", "--gzip", FormatGzip},
		{"gnu.tar.zst", "--zstd", FormatZstd},
		{"gnu-posix.tar", "--format=posix", FormatTar},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			arc := filepath.Join(dir, c.file)
			args := []string{"-C", src, "-cf", arc, "."}
			if c.flag != "" {
				args = append([]string{c.flag}, args...)
			}
			// GNU tar warns about the socket and still exits 0.
			run(t, "tar", args...)
			dest := filepath.Join(t.TempDir(), "new", "dest") // parents created
			st, err := Unpack(arc, dest, UnpackOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if st.Format != c.format {
				t.Errorf("format %q, want %q", st.Format, c.format)
			}
			compareTrees(t, want, snapshot(t, dest))
		})
	}
}

// TestPackFromTar repacks a GNU tarball into a berth image.
func TestPackFromTar(t *testing.T) {
	dir := t.TempDir()
	src := makeTree(t, dir)
	want := withoutSocket(snapshot(t, src))
	arc := filepath.Join(dir, "in.tar.gz")
	run(t, "tar", "-C", src, "-czf", arc, ".")
	img := filepath.Join(dir, "out.tar.zst")
	if err := Pack(arc, img, PackOptions{FrameSize: testFrameSize}); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "dest")
	st, err := Unpack(img, dest, UnpackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Format != FormatBerth {
		t.Errorf("format %q", st.Format)
	}
	compareTrees(t, want, snapshot(t, dest))
}

// TestPackDeterministic packs the same tree twice into identical bytes,
// and leaves no temporary file behind.
func TestPackDeterministic(t *testing.T) {
	dir := t.TempDir()
	src := makeTree(t, dir)
	var images [2][]byte
	for i := range images {
		out := filepath.Join(dir, "out", "img.tar.zst")
		os.MkdirAll(filepath.Dir(out), 0o755)
		if err := Pack(src, out, PackOptions{}); err != nil {
			t.Fatal(err)
		}
		images[i], _ = os.ReadFile(out)
		entries, _ := os.ReadDir(filepath.Dir(out))
		if len(entries) != 1 {
			t.Errorf("output directory holds %d files, want only the image", len(entries))
		}
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Error("two packs of one tree differ")
	}
}

// TestPackIntoSource packs a directory into a file inside itself: the
// image must not contain itself.
func TestPackIntoSource(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), []byte("a"), 0o644)
	img := filepath.Join(dir, "img.tar.zst")
	if err := Pack(dir, img, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	st, err := Unpack(img, dest, UnpackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != 2 {
		t.Errorf("%d entries, want 2 (root and a)", st.Entries)
	}
}
