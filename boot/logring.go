package boot

import (
	"sync"
	"time"
	"unsafe"
)

// LogLine is one line a container wrote.
type LogLine struct {
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// logRing keeps a container's most recent output within a byte budget,
// feeds followers (berth logs -f) and an optional rotated file. It is
// shared by the output reader, the supervisor and the control server.
type logRing struct {
	mu    sync.Mutex
	max   int
	lines []LogLine
	start int // lines[start:] are live
	size  int
	subs  map[chan LogLine]struct{}
	file  *rotatingFile
}

func newLogRing(max int, file *rotatingFile) *logRing {
	return &logRing{max: max, subs: map[chan LogLine]struct{}{}, file: file}
}

// lineCost is what a line costs the ring's budget, log_size: the memory
// it keeps. Its text, rounded up as the allocator rounds it (at most an
// eighth, and a tiny string a block of 16 bytes), and its place in the
// ring: a LogLine in a slice of at most twice the lines still kept (the
// dropped ones are cut off once they outnumber them, or pass 64) and
// grown by at most twice what it holds, so four LogLines, and a little
// for the cut-off threshold.
func lineCost(l LogLine) int { return len(l.Text) + len(l.Text)/8 + 16 + 4*int(unsafe.Sizeof(l)) }

// add appends a line, dropping the oldest ones beyond the budget.
func (r *logRing) add(l LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, l)
	r.size += lineCost(l)
	for r.size > r.max && r.start < len(r.lines)-1 {
		r.size -= lineCost(r.lines[r.start])
		r.lines[r.start] = LogLine{}
		r.start++
	}
	if r.start > len(r.lines)/2 && r.start > 64 {
		r.lines = append(r.lines[:0:0], r.lines[r.start:]...)
		r.start = 0
	}
	for ch := range r.subs {
		select {
		case ch <- l:
		default: // a follower too slow to keep up misses lines
		}
	}
	if r.file != nil {
		r.file.writeLine(l)
	}
}

// close closes the ring's log file; lines still reach the ring.
func (r *logRing) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.file.close()
	r.file = nil
}

// tail returns the last n lines (all when n <= 0).
func (r *logRing) tail(n int) []LogLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	live := r.lines[r.start:]
	if n > 0 && n < len(live) {
		live = live[len(live)-n:]
	}
	return append([]LogLine(nil), live...)
}

// follow returns the last n lines and a channel of the lines that follow,
// until cancel is called.
func (r *logRing) follow(n int) ([]LogLine, <-chan LogLine, func()) {
	ch := make(chan LogLine, 256)
	backlog := r.tail(n)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return backlog, ch, func() {
		r.mu.Lock()
		delete(r.subs, ch)
		r.mu.Unlock()
	}
}
