package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestUnpackWork unpacks a tree of several frames with crews of every
// shape: the tree is the same, every frame is decoded once, and files are
// handed to the helpers in batches exactly when there are writers besides
// the unpacking goroutine.
func TestUnpackWork(t *testing.T) {
	want, img := packTree(t)
	cases := []struct{ workers, writers, goroutines int }{
		{2, 2, 2},
		{4, 4, 4},
		{1, 4, 4},
		{3, 1, 3},
		{1, 1, 1},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("workers %d writers %d", c.workers, c.writers), func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "dest")
			st, err := Unpack(img, dest, UnpackOptions{Workers: c.workers, Writers: c.writers})
			if err != nil {
				t.Fatal(err)
			}
			compareTrees(t, want, snapshot(t, dest))
			w := st.Work
			if w.Goroutines != c.goroutines || w.Frames != st.Frames || w.Decode <= 0 {
				t.Errorf("work %+v: want %d goroutines, %d frames decoded", w, c.goroutines, st.Frames)
			}
			if handed := w.Batches > 0; handed != (c.writers > 1) {
				t.Errorf("%d batches handed over with %d writers", w.Batches, c.writers)
			}
		})
	}
}

// TestUnpackWorkersAtMostCPUs: by default a berth image is unpacked by no
// more goroutines than there are CPUs, even when GOMAXPROCS is higher (as
// berth sets it on one CPU while it unpacks): more would only take turns.
func TestUnpackWorkersAtMostCPUs(t *testing.T) {
	_, img := packTree(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(runtime.NumCPU() + 1))
	st, err := Unpack(img, filepath.Join(t.TempDir(), "dest"), UnpackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Work.Goroutines != runtime.NumCPU() {
		t.Errorf("%d goroutines unpacked with GOMAXPROCS %d on %d CPUs, want %d", st.Work.Goroutines, runtime.NumCPU()+1, runtime.NumCPU(), runtime.NumCPU())
	}
}

// TestUnpackWriteErrorStops makes a helper's write fail in the middle of a
// berth image (a file whose path is a non-empty directory already in
// DEST): the unpack stops with that entry's error, every helper has
// returned, and the entries far after it are not written.
func TestUnpackWriteErrorStops(t *testing.T) {
	var entries []entry
	for i := range 400 {
		entries = append(entries, entry{name: fmt.Sprintf("f%03d", i), typ: tar.TypeReg, data: strings.Repeat("x", 3000)})
	}
	dir := t.TempDir()
	arc := filepath.Join(dir, "many.tar")
	writeTar(t, arc, entries)
	berth := berthMode(t)
	for _, writers := range []int{2, 3} {
		t.Run(fmt.Sprint(writers, " writers"), func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "dest")
			if err := os.MkdirAll(filepath.Join(dest, "f100", "keep"), 0o755); err != nil {
				t.Fatal(err)
			}
			before := runtime.NumGoroutine()
			_, err := unpackMode(t, arc, dest, berth, UnpackOptions{Workers: writers, Writers: writers})
			if !errors.Is(err, errDirNotEmpty) || !strings.Contains(err.Error(), `entry "f100" at offset `) {
				t.Fatalf("error %v: want f100's, a non-empty directory", err)
			}
			// A goroutine of the unpack may still be on its way out as
			// Unpack returns; one that stays is a leak.
			after := runtime.NumGoroutine()
			for i := 0; i < 3000 && after > before; i++ { // up to 30 s: a hang guard
				time.Sleep(10 * time.Millisecond)
				after = runtime.NumGoroutine()
			}
			if after > before {
				t.Errorf("%d goroutines before the unpack, %d after", before, after)
			}
			if _, err := os.Stat(filepath.Join(dest, "f399")); err == nil {
				t.Error("f399 written after the error")
			}
		})
	}
}

// berthMode is the index of the unpack mode that frames a tar as a berth
// image and writes with the default writers.
func berthMode(t *testing.T) int {
	for i, m := range unpackModes {
		if m.name == "berth" {
			return i
		}
	}
	t.Fatal("no berth unpack mode")
	return -1
}

// TestUnpackDefaultFrames unpacks an image packed with the default frame
// size, whose decode buffers are mapped outside the heap on a huge page
// boundary: every byte comes back.
func TestUnpackDefaultFrames(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "tree")
	want := map[string][]byte{}
	rng := rand.NewChaCha8([32]byte{7})
	k := DefaultFrameSize / (2 << 20) // the sizes are for 2 MiB frames
	for i, size := range []int{3 << 20 * k, 1<<20*k + 5, 700 << 10 * k, 5 << 20 * k} {
		data := make([]byte, size)
		rng.Read(data)
		name := fmt.Sprintf("f%d", i)
		want[name] = data
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "img")
	if err := Pack(src, img, PackOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, writers := range []int{1, 2} {
		dest := filepath.Join(t.TempDir(), "dest")
		st, err := Unpack(img, dest, UnpackOptions{Workers: 2, Writers: writers})
		if err != nil {
			t.Fatal(err)
		}
		if st.Frames < 5 {
			t.Errorf("%d frames, want at least 5 of the default size", st.Frames)
		}
		for name, data := range want {
			got, err := os.ReadFile(filepath.Join(dest, name))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%d writers: %s differs (%v)", writers, name, err)
			}
		}
	}
}

// TestFrameBufferAlignment checks that a mapped decode buffer starts on a
// huge page boundary inside its mapping, with the frame's capacity.
func TestFrameBufferAlignment(t *testing.T) {
	p := bufferPool{}
	p.init(DefaultFrameSize+12345, 2)
	buf, span := p.make()
	if span == nil {
		t.Fatal("a buffer of a default frame is not mapped")
	}
	defer unix.Munmap(span)
	addr, start := reflect.ValueOf(buf[:1]).Pointer(), reflect.ValueOf(span).Pointer()
	if addr%hugePage != 0 || len(buf) != 0 || cap(buf) != p.capacity || addr < start || addr+uintptr(cap(buf)) > start+uintptr(len(span)) {
		t.Errorf("buffer at %#x (cap %d) in mapping at %#x (len %d): want a huge page boundary inside it", addr, cap(buf), start, len(span))
	}
}

// TestUnpackPanicFails: a panic while a frame is decoded or a batch of
// files written (a defect, injected here) fails the unpack naming it, on
// the unpacking goroutine or a helper alike, instead of ending the process
// — which a helper's panic would, berth being PID 1 among others. (With
// one writer the unpacking goroutine writes every file itself, outside
// the crew: its caller recovers.)
func TestUnpackPanicFails(t *testing.T) {
	_, img := packTree(t)
	for _, c := range []struct {
		name  string
		frame int
	}{{"decode", 1}, {"write", -1}} {
		for _, workers := range []int{1, 2, 4} {
			if c.frame < 0 && workers == 1 {
				continue
			}
			t.Run(fmt.Sprintf("%s workers %d", c.name, workers), func(t *testing.T) {
				crewHook = func(frame int) {
					if frame == c.frame {
						panic("injected")
					}
				}
				defer func() { crewHook = nil }()
				_, err := Unpack(img, filepath.Join(t.TempDir(), "dest"), UnpackOptions{Workers: workers, Writers: workers})
				if err == nil || !strings.Contains(err.Error(), "internal error (panic: injected)") {
					t.Errorf("unpack with a panic in its %s: %v", c.name, err)
				}
			})
		}
	}
}
