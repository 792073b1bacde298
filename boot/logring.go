package boot

import (
	"sync"
	"time"
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

// add appends a line, dropping the oldest ones beyond the budget.
func (r *logRing) add(l LogLine) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cost := len(l.Text) + 32
	r.lines = append(r.lines, l)
	r.size += cost
	for r.size > r.max && r.start < len(r.lines)-1 {
		r.size -= len(r.lines[r.start].Text) + 32
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
