package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"maps"
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
		{"berth into a tmpfs", func(t *testing.T, dest string) { // raw writes (memwrite.go)
			mountTmpfs(t, dest)
			if _, err := Unpack(img, dest, UnpackOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"berth-1-worker", func(t *testing.T, dest string) {
			if _, err := Unpack(img, dest, UnpackOptions{Workers: 1}); err != nil {
				t.Fatal(err)
			}
		}},
		{"berth-4-writers-1-decoder", func(t *testing.T, dest string) {
			if _, err := Unpack(img, dest, UnpackOptions{Writers: 4, Workers: 1}); err != nil {
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
	// --sparse: GNU's old sparse headers in its own format, PAX sparse
	// 1.0 in the posix one, which also keeps nanoseconds.
	cases := []struct {
		file, flag, format string
		nanoseconds        bool
	}{
		{"gnu.tar", "", FormatTar, false},
		{"gnu.tar.gz", "--gzip", FormatGzip, false},
		{"gnu.tar.zst", "--zstd", FormatZstd, false},
		{"gnu-posix.tar", "--format=posix", FormatTar, true},
		{"gnu-posix.tar.zst", "--format=posix --zstd", FormatZstd, true},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			arc := filepath.Join(dir, c.file)
			args := append(strings.Fields(c.flag), "--sparse", "-C", src, "-cf", arc, ".")
			want := want
			if !c.nanoseconds {
				want = wholeSecondTimes(maps.Clone(want))
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
	run(t, "tar", "--format=posix", "--sparse", "-C", src, "-czf", arc, ".")
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

// TestRepeatedPaths unpacks archives naming paths more than once: the last
// entry wins, as with tar, in every mode and through Pack.
func TestRepeatedPaths(t *testing.T) {
	entries := []entry{
		{name: "a", typ: regT, data: "first"}, {name: "a", typ: regT, data: "second"},
		{name: "b", typ: symT, link: "a"}, {name: "b", typ: regT, data: "b"},
		{name: "c/", typ: dirT}, {name: "c/x", typ: regT, data: "x"}, {name: "c/", typ: dirT, mode: 0o700},
		{name: "d/", typ: dirT}, {name: "d", typ: symT, link: "c"},
		{name: "e", typ: regT, data: "e"}, {name: "e/", typ: dirT}, {name: "e/y", typ: regT, data: "y"},
		{name: "h", typ: linkT, link: "a"}, {name: "a", typ: regT, data: "third"},
	}
	want := map[string]string{"a": "file third", "b": "file b", "c": "dir", "c/x": "file x", "d": "-> c",
		"e": "dir", "e/y": "file y", "h": "file second"}
	for mode, m := range unpackModes {
		t.Run(m.name, func(t *testing.T) {
			dir := t.TempDir()
			arc := filepath.Join(dir, "rep.tar")
			writeTar(t, arc, entries)
			dest := filepath.Join(dir, "dest")
			if _, err := unpackMode(t, arc, dest, mode, UnpackOptions{}); err != nil {
				t.Fatal(err)
			}
			compareLists(t, want, listTree(t, dest))
		})
	}
	dir := t.TempDir()
	arc, img := filepath.Join(dir, "rep.tar"), filepath.Join(dir, "rep.img")
	writeTar(t, arc, entries)
	if err := Pack(arc, img, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Unpack(img, filepath.Join(dir, "dest"), UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	compareLists(t, want, listTree(t, filepath.Join(dir, "dest")))
}

// TestBudgetWithHugeHeaders unpacks a berth image of small frames whose
// entries carry near-limit PAX headers: a batch of queued entries then
// spans more frames than the decode budget holds, which must not stall the
// unpack (queued entries are handed to the writers before waiting for a
// frame).
func TestBudgetWithHugeHeaders(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range 40 {
		hdr := &tar.Header{Name: fmt.Sprintf("f%02d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: 10,
			PAXRecords: map[string]string{"comment": strings.Repeat("c", 1000<<10)}}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte("0123456789"))
	}
	tw.Close()
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	os.WriteFile(img, berthFromTar(t, buf.Bytes(), 1<<20), 0o644)
	st, err := Unpack(img, filepath.Join(dir, "dest"), UnpackOptions{Writers: 2})
	if err != nil || st.Entries != 40 {
		t.Fatalf("%+v %v", st, err)
	}
}
