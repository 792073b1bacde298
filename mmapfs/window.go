package mmapfs

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Windows. A 32-bit process has about 3 GB of address space, in pieces:
// one mapping of a multi-gigabyte image does not fit. There a Mapping
// larger than one window maps the file piece by piece instead: a reader
// asks for a range (view), which is served from a mapped window that
// holds it whole, or from a new one. Windows are WindowSize bytes (32 MiB
// on 32-bit), start at multiples of half a window, and at most
// windowBudget of them are mapped at once; a window is unmapped only when
// no reader holds a view of it and room is needed, least recently used
// first. A range of at most half a window — any frame of a default image
// — always lies in one window; a longer one gets a window of its own,
// page-aligned around it. A reader that finds no room waits for one to be
// handed back, so a reader must hold one view at a time.

// window32 is the window size of 32-bit processes; 64-bit processes map
// every file whole.
const window32 = 32 << 20

// windowBudget is how many windows' worth of address space a Mapping
// takes at most (one window longer than that is mapped alone).
const windowBudget = 4

// windowOverride, when not zero, replaces the platform's window size.
var windowOverride atomic.Int64

// SetWindowSize makes files mapped from now on larger than n bytes read
// through windows of n bytes (rounded up to two pages), on any platform,
// and returns the previous setting; 0 restores the platform's default
// (windows of 32 MiB on 32-bit platforms, whole mappings on 64-bit ones).
// It is a test hook: the windowed path is otherwise taken on 32-bit only.
func SetWindowSize(n int64) int64 {
	if n > 0 {
		step := 2 * int64(unix.Getpagesize())
		n = (n + step - 1) / step * step
	}
	return windowOverride.Swap(n)
}

// windowSize is the window size for a new mapping; 0 maps whole.
func windowSize() int64 {
	if n := windowOverride.Load(); n != 0 {
		return n
	}
	if strconv.IntSize == 32 {
		return window32
	}
	return 0
}

// windows maps one file in windows.
type windows struct {
	fd     int   // a descriptor of its own, closed by close
	size   int64 // the file's size when it was opened
	win    int64 // window size, a multiple of two pages
	page   int64
	mu     sync.Mutex
	cond   sync.Cond // a view was handed back, or the mapping closed
	maps   []*window
	mapped int64 // bytes mapped
	tick   uint64
	advice []int // applied to every window mapped
	closed bool
}

// window is one mapped piece of the file.
type window struct {
	off     int64 // file offset of data[0], page-aligned
	data    []byte
	refs    int // views held
	lastUse uint64
}

// view is n bytes of a Mapping's file at some offset, held mapped until
// close. Reading b may fault if the file shrank: see the package doc.
type view struct {
	b    []byte
	ws   *windows // nil for a whole mapping
	w    *window
	pool *sync.Pool // a sealed mapping's copy: buf goes back to it
	buf  *[]byte
}

// close hands the view back; b must not be read after.
func (v view) close() {
	if v.ws != nil {
		v.ws.unref(v.w)
	}
	if v.pool != nil {
		v.pool.Put(v.buf)
	}
}

var errClosed = errors.New("mapping closed")

// newWindows reads the file open as f through windows of win bytes. It
// keeps a descriptor of its own.
func newWindows(f *os.File, size, win int64) (*windows, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	ws := &windows{fd: fd, size: size, win: win, page: int64(unix.Getpagesize())}
	ws.cond.L = &ws.mu
	return ws, nil
}

// bounds is the file range [start, end) of the window that serves the n
// bytes at off.
func (ws *windows) bounds(off, n int64) (start, end int64) {
	half := ws.win / 2
	start = off / half * half
	end = min(start+ws.win, ws.size)
	if off+n > end { // passes the window (only more than half a window can): a window of its own
		start = off / ws.page * ws.page
		end = min((off+n+ws.page-1)/ws.page*ws.page, ws.size)
	}
	return start, end
}

// view returns the n bytes at off (inside the file), from a mapped window
// or a new one, waiting while the budget is held by other views.
func (ws *windows) view(off, n int64) (view, error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for {
		if ws.closed {
			return view{}, errClosed
		}
		ws.tick++
		for _, w := range ws.maps {
			if w.off <= off && off+n <= w.off+int64(len(w.data)) {
				w.refs++
				w.lastUse = ws.tick
				return view{b: w.data[off-w.off:][:n], ws: ws, w: w}, nil
			}
		}
		start, end := ws.bounds(off, n)
		if ws.makeRoom(end - start) {
			w, err := ws.mapWindow(start, end)
			if errors.Is(err, unix.ENOMEM) && ws.dropUnused() {
				w, err = ws.mapWindow(start, end) // the address space was fragmented
			}
			if err != nil {
				return view{}, err
			}
			w.refs, w.lastUse = 1, ws.tick
			return view{b: w.data[off-start:][:n], ws: ws, w: w}, nil
		}
		ws.cond.Wait()
	}
}

// makeRoom unmaps unused windows, least recently used first, until a new
// one of n bytes fits the budget; a window longer than the budget fits
// when nothing else is mapped. It reports whether it fits.
func (ws *windows) makeRoom(n int64) bool {
	for ws.mapped > 0 && ws.mapped+n > windowBudget*ws.win {
		victim := -1
		for i, w := range ws.maps {
			if w.refs == 0 && (victim < 0 || w.lastUse < ws.maps[victim].lastUse) {
				victim = i
			}
		}
		if victim < 0 {
			return false
		}
		ws.unmap(victim)
	}
	return true
}

// dropUnused unmaps every window no view holds and reports whether there
// was one.
func (ws *windows) dropUnused() bool {
	dropped := false
	for i := len(ws.maps) - 1; i >= 0; i-- {
		if ws.maps[i].refs == 0 {
			ws.unmap(i)
			dropped = true
		}
	}
	return dropped
}

// mapWindow maps [start, end) of the file and applies the advice given
// so far.
func (ws *windows) mapWindow(start, end int64) (*window, error) {
	if end-start > math.MaxInt {
		return nil, fmt.Errorf("%d bytes at offset %d: too large to map", end-start, start)
	}
	data, err := unix.Mmap(ws.fd, start, int(end-start), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("mmap %d bytes at offset %d: %w", end-start, start, err)
	}
	for _, a := range ws.advice {
		_ = unix.Madvise(data, a)
	}
	w := &window{off: start, data: data}
	ws.maps = append(ws.maps, w)
	ws.mapped += int64(len(data))
	return w, nil
}

// unmap drops window i, which no view holds.
func (ws *windows) unmap(i int) {
	w := ws.maps[i]
	_ = unix.Munmap(w.data)
	ws.mapped -= int64(len(w.data))
	ws.maps = append(ws.maps[:i], ws.maps[i+1:]...)
}

// unref hands a view of w back.
func (ws *windows) unref(w *window) {
	ws.mu.Lock()
	w.refs--
	ws.mu.Unlock()
	ws.cond.Broadcast()
}

// advise applies advice to the windows mapped and to those mapped later.
func (ws *windows) advise(advice int) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.advice = append(ws.advice, advice)
	for _, w := range ws.maps {
		_ = unix.Madvise(w.data, advice)
	}
}

// release drops the pages of the mapped windows that lie wholly inside
// [off, off+n) (see Mapping.Release).
func (ws *windows) release(off, n int64) {
	start := (off + ws.page - 1) / ws.page * ws.page
	end := min(off+n, ws.size) / ws.page * ws.page
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for _, w := range ws.maps {
		lo, hi := max(start, w.off), min(end, w.off+int64(len(w.data)))
		if lo < hi {
			_ = unix.Madvise(w.data[lo-w.off:hi-w.off], unix.MADV_DONTNEED)
		}
	}
}

// close unmaps every window and closes the descriptor; views must all have
// been handed back.
func (ws *windows) close() error {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return nil
	}
	ws.closed = true
	for len(ws.maps) > 0 {
		ws.unmap(len(ws.maps) - 1)
	}
	ws.cond.Broadcast()
	return unix.Close(ws.fd)
}
