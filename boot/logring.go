package boot

import (
	"fmt"
	"os"
	"path/filepath"
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

// rotatingFile appends lines to path, rotating it to path.1 ... path.N
// when it grows past maxSize.
type rotatingFile struct {
	path    string
	maxSize int64
	keep    int
	f       *os.File
	size    int64
	err     error // the first write error, reported once
}

func openRotatingFile(path string, maxSize int64, keep int) (*rotatingFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log file %s: %w", path, err)
	}
	r := &rotatingFile{path: path, maxSize: maxSize, keep: keep}
	return r, r.open()
}

func (r *rotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("log file %s: %w", r.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log file %s: %w", r.path, err)
	}
	r.f, r.size = f, fi.Size()
	return nil
}

func (r *rotatingFile) writeLine(l LogLine) {
	if r.f == nil {
		return
	}
	line := l.Time.UTC().Format(time.RFC3339Nano) + " " + l.Text + "\n"
	if r.size+int64(len(line)) > r.maxSize && r.size > 0 {
		r.rotate()
	}
	n, err := r.f.WriteString(line)
	r.size += int64(n)
	if err != nil && r.err == nil {
		r.err = err
	}
}

// rotate shifts path.i to path.i+1, dropping the oldest, and starts a new
// path.
func (r *rotatingFile) rotate() {
	r.f.Close()
	r.f = nil
	os.Remove(fmt.Sprintf("%s.%d", r.path, r.keep))
	for i := r.keep - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", r.path, i), fmt.Sprintf("%s.%d", r.path, i+1))
	}
	os.Rename(r.path, r.path+".1")
	if err := r.open(); err != nil && r.err == nil {
		r.err = err
	}
}

func (r *rotatingFile) close() {
	if r != nil && r.f != nil {
		r.f.Close()
	}
}
