package mmapfs

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// withWindows makes the files mapped during the test that are larger than
// n bytes read through windows of n bytes, as on 32-bit platforms.
func withWindows(t testing.TB, n int64) {
	old := SetWindowSize(n)
	t.Cleanup(func() { SetWindowSize(old) })
}

// randomFile writes size random bytes to a new file.
func randomFile(t *testing.T, size int) (string, []byte) {
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{7}).Read(data)
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// mapWindowed maps p and fails unless the mapping is windowed.
func mapWindowed(t *testing.T, p string) *Mapping {
	t.Helper()
	m, err := Map(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if m.ws == nil {
		t.Fatalf("%s (%d bytes) is mapped whole with windows of %d bytes", p, m.Size(), windowSize())
	}
	return m
}

// checkWindows fails when views are still held or more is mapped than the
// budget allows.
func checkWindows(t *testing.T, m *Mapping) {
	t.Helper()
	ws := m.ws
	ws.mu.Lock()
	defer ws.mu.Unlock()
	var sum int64
	for _, w := range ws.maps {
		if w.refs != 0 {
			t.Errorf("window at %d: %d views held", w.off, w.refs)
		}
		if w.off%ws.page != 0 || w.off+int64(len(w.data)) > ws.size {
			t.Errorf("window [%d, +%d) is unaligned or past the file's %d bytes", w.off, len(w.data), ws.size)
		}
		sum += int64(len(w.data))
	}
	if sum != ws.mapped || len(ws.maps) > 1 && sum > windowBudget*ws.win {
		t.Errorf("%d windows, %d bytes mapped (counted %d): over the budget of %d", len(ws.maps), sum, ws.mapped, windowBudget*ws.win)
	}
}

// TestWindowedReadAt reads ranges that lie in one window, cross the half
// and the end of a window, are longer than a window, or pass the end of
// the file, through windows of 1 MiB; each read gives the file's bytes.
func TestWindowedReadAt(t *testing.T) {
	withWindows(t, 1<<20)
	p, data := randomFile(t, 5<<20+123)
	m := mapWindowed(t, p)
	size := int64(len(data))
	cases := []struct{ off, n int64 }{
		{0, 100}, {512<<10 - 10, 20}, {1<<20 - 10, 20}, {3<<20 - 1, 2}, {0, 3 << 20},
		{2<<20 + 1, 700 << 10}, {size - 5, 10}, {size - 4096, 4096}, {size, 1}, {size + 10, 1},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		cases = append(cases, struct{ off, n int64 }{r.Int64N(size), r.Int64N(1 << 20)})
	}
	for _, c := range cases {
		buf := make([]byte, c.n)
		n, err := m.ReadAt(buf, c.off)
		want := data[min(c.off, size):min(c.off+c.n, size)]
		if !bytes.Equal(buf[:n], want) || (n < len(buf)) != (err == io.EOF) || err != nil && err != io.EOF {
			t.Fatalf("%d bytes at %d: got %d bytes (%v), want %d", c.n, c.off, n, err, len(want))
		}
		checkWindows(t, m)
	}
	// A file no larger than a window is mapped whole.
	small, _ := randomFile(t, 1<<20)
	whole, err := Map(small)
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	if whole.ws != nil {
		t.Error("a file of one window's size is windowed")
	}
}

// TestWindowedReader reads a file from start to end: the windows stay in
// the budget and every byte arrives.
func TestWindowedReader(t *testing.T) {
	withWindows(t, 64<<10)
	p, data := randomFile(t, 3<<20+5)
	m := mapWindowed(t, p)
	m.Advise(AdviseSequential)
	r := m.NewReader()
	var got bytes.Buffer
	buf := make([]byte, 40<<10)
	for {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		checkWindows(t, m)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Errorf("read %d bytes, not the file's %d", got.Len(), len(data))
	}
}

// TestWindowedConcurrent has goroutines read random ranges, some through
// views held while others map and unmap windows (run it with -race).
func TestWindowedConcurrent(t *testing.T) {
	withWindows(t, 64<<10)
	p, data := randomFile(t, 2<<20+77)
	m := mapWindowed(t, p)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for range 500 {
				off := r.Int64N(int64(len(data)))
				n := min(r.Int64N(40<<10), int64(len(data))-off)
				v, err := m.view(off, n)
				if err != nil {
					errs <- err
					return
				}
				same := false
				err = Guard(func() error { same = bytes.Equal(v.b, data[off:off+n]); return nil })
				v.close()
				if err != nil || !same {
					errs <- errors.New("a view differs from the file")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkWindows(t, m)
}

// TestWindowedBudget holds views in as many windows as the budget allows:
// the next view waits until one is handed back, then gets its window.
func TestWindowedBudget(t *testing.T) {
	withWindows(t, 64<<10)
	p, data := randomFile(t, 1<<20)
	m := mapWindowed(t, p)
	var held []view
	for i := range int64(windowBudget) {
		v, err := m.view(i*64<<10, 10)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, v)
	}
	got := make(chan view)
	go func() {
		v, err := m.view(600<<10, 10)
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	select {
	case <-got:
		t.Fatal("a fifth window was mapped while four were held")
	default:
	}
	held[1].close()
	v := <-got
	if !bytes.Equal(v.b, data[600<<10:600<<10+10]) {
		t.Error("the view differs from the file")
	}
	v.close()
	for _, h := range append(held[:1], held[2:]...) {
		h.close()
	}
	checkWindows(t, m)
	// A range longer than the whole budget still maps, alone.
	v, err := m.view(1, int64(len(data))-1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.b, data[1:]) {
		t.Error("the long view differs from the file")
	}
	v.close()
}

// TestWindowedTruncated truncates a file read through windows: a window
// mapped before keeps reading what is still in the file, anything past
// the new end is ErrFault — never a crash — in mapped windows and new ones.
func TestWindowedTruncated(t *testing.T) {
	withWindows(t, 1<<20)
	p, data := randomFile(t, 4<<20)
	m := mapWindowed(t, p)
	buf := make([]byte, 4096)
	if _, err := m.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 1<<20+512<<10); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReadAt(buf, 8192); err != nil || !bytes.Equal(buf, data[8192:8192+4096]) {
		t.Errorf("before the new end: %v", err)
	}
	for _, off := range []int64{3 << 20, 1<<20 + 512<<10 - 100, 600 << 10} {
		if _, err := m.ReadAt(make([]byte, 1<<20), off); !errors.Is(err, ErrFault) {
			t.Errorf("at %d: %v, want ErrFault", off, err)
		}
	}
	v, err := m.view(2<<20, 1<<10)
	if err != nil {
		t.Fatal(err)
	}
	err = Guard(func() error { sink += v.b[0]; return nil })
	v.close()
	if !errors.Is(err, ErrFault) {
		t.Errorf("view past the end: %v, want ErrFault", err)
	}
	checkWindows(t, m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReadAt(buf, 0); err == nil {
		t.Error("read after Close succeeded")
	}
}
