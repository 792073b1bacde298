package boot

import (
	"encoding/json"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"
)

// LogLine is one line a container wrote, its bytes as written.
type LogLine struct {
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// logLineJSON is LogLine on the wire. A JSON string holds UTF-8 only,
// and encoding/json replaces each byte that is not with U+FFFD: a line
// that is not valid UTF-8 also carries its bytes, base64, in raw, from
// which they are read back.
type logLineJSON struct {
	Time time.Time `json:"time"`
	Text string    `json:"text"`
	Raw  []byte    `json:"raw,omitempty"`
}

// MarshalJSON adds raw to a line that is not valid UTF-8.
func (l LogLine) MarshalJSON() ([]byte, error) {
	j := logLineJSON{Time: l.Time, Text: l.Text}
	if !utf8.ValidString(l.Text) {
		j.Raw = []byte(l.Text)
	}
	return json.Marshal(j)
}

// UnmarshalJSON takes a line's bytes from raw when it has them.
func (l *LogLine) UnmarshalJSON(b []byte) error {
	var j logLineJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	l.Time, l.Text = j.Time, j.Text
	if j.Raw != nil {
		l.Text = string(j.Raw)
	}
	return nil
}

// logRing keeps a container's most recent output within a byte budget,
// wakes followers (berth logs -f) and feeds an optional rotated file. It
// is shared by the output reader, the supervisor and the control server.
//
// Every line the ring is given has a sequence number, counting from 0:
// a reader (berth logs) takes the lines by number, a batch at a time, so
// what it holds at once is one batch, not a copy of the ring.
type logRing struct {
	mu      sync.Mutex
	max     int
	lines   []LogLine
	start   int    // lines[start:] are live
	dropped uint64 // lines dropped so far: lines[start]'s sequence number
	size    int
	subs    map[chan struct{}]struct{}
	file    *rotatingFile
	// The lines for file wait in pending, in the ring's order, and one
	// add at a time (writing) writes them without holding mu: a slow
	// write (a slow disk) holds up neither readers nor followers, nor
	// the add of another output reader. An add waits (on cond, mu let
	// go) while pendingCost is over fileBacklog: a slow disk slows the
	// container's output down rather than growing PID 1's memory.
	pending     []LogLine
	pendingCost int
	writing     bool
	closing     bool      // close waits for the lines pending: no more join them
	cond        sync.Cond // on mu: pending taken, writing ended
	waited      int       // adds that have waited for the file (a test reads it)
}

// fileBacklog is how much output may wait for a log_file write already
// under way before the output's reader waits too.
const fileBacklog = 256 << 10

// A batch of lines read from the ring (logRing.read) holds at most
// logBatchLines lines and, past its first, logBatchBytes of JSON
// (jsonCost): a berth logs answer costs PID 1 one batch, however large
// the ring (log_size, up to 64 MiB) and however its text grows as JSON
// (a control character takes 6 bytes there, an invalid byte 6 and its
// base64 in raw).
const (
	logBatchLines = 512
	logBatchBytes = 64 << 10
)

// jsonCost is at least the size of l in an answer (LogLine.MarshalJSON):
// its time and keys, its text escaped as encoding/json escapes it (an
// invalid byte becomes \ufffd), and, when the text is not valid UTF-8,
// its bytes again in base64.
func jsonCost(l LogLine) int {
	const keys = 64 // {"time":"2006-01-02T15:04:05.999999999Z07:00","text":""}
	cost, valid := keys, true
	for i, r := range l.Text {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(l.Text[i:], "\uFFFD"):
			cost += 6
			valid = false
		case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
			cost += 6
		case r == '"' || r == '\\':
			cost += 2
		default:
			cost += utf8.RuneLen(r)
		}
	}
	if !valid {
		cost += len(`,"raw":""`) + (len(l.Text)+2)/3*4
	}
	return cost
}

func newLogRing(max int, file *rotatingFile) *logRing {
	r := &logRing{max: max, subs: map[chan struct{}]struct{}{}, file: file}
	r.cond.L = &r.mu
	return r
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
	r.lines = append(r.lines, l)
	r.size += lineCost(l)
	for r.size > r.max && r.start < len(r.lines)-1 {
		r.size -= lineCost(r.lines[r.start])
		r.lines[r.start] = LogLine{}
		r.start++
		r.dropped++
	}
	if r.start > len(r.lines)/2 && r.start > 64 {
		r.lines = append(r.lines[:0:0], r.lines[r.start:]...)
		r.start = 0
	}
	for ch := range r.subs {
		select {
		case ch <- struct{}{}:
		default: // already woken
		}
	}
	if r.file == nil || r.closing {
		r.mu.Unlock()
		return
	}
	r.pending = append(r.pending, l)
	r.pendingCost += lineCost(l)
	if !r.writing {
		r.writeFile() // unlocks mu
		return
	}
	for r.writing && r.pendingCost > fileBacklog {
		r.waited++
		r.cond.Wait()
	}
	r.mu.Unlock()
}

// writeFile writes the pending lines to the file, in order, without
// holding mu, until none are left; called with mu held, it returns with
// mu let go.
func (r *logRing) writeFile() {
	r.writing = true
	for len(r.pending) > 0 {
		batch, f := r.pending, r.file
		r.pending, r.pendingCost = nil, 0
		r.cond.Broadcast()
		r.mu.Unlock()
		for _, l := range batch {
			f.writeLine(l)
		}
		r.mu.Lock()
	}
	r.pending, r.pendingCost, r.writing = nil, 0, false
	r.cond.Broadcast()
	r.mu.Unlock()
}

// close closes the ring's log file once the lines given to it so far
// are written; lines still reach the ring.
func (r *logRing) close() {
	r.mu.Lock()
	r.closing = true
	for r.writing {
		r.cond.Wait()
	}
	f := r.file
	r.file, r.closing = nil, false
	r.mu.Unlock()
	f.close()
}

// tail returns the last n lines (all when n <= 0).
func (r *logRing) tail(n int) []LogLine {
	from, to := r.span(n)
	var all []LogLine
	for from < to {
		var lines []LogLine
		lines, from = r.read(from, to)
		all = append(all, lines...)
	}
	return all
}

// span returns the sequence numbers of the first of the last n lines
// (all when n <= 0) and of the line that will follow the newest.
func (r *logRing) span(n int) (from, to uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	live := uint64(len(r.lines) - r.start)
	to = r.dropped + live
	from = r.dropped
	if n > 0 && uint64(n) < live {
		from = to - uint64(n)
	}
	return from, to
}

// read returns a batch of the lines numbered from up to to (not
// included) — from the oldest the ring still holds when it has dropped
// line from since — and the number of the line to read next: to once
// the batch reaches it. The batch is a copy; the lines' text is shared.
func (r *logRing) read(from, to uint64) ([]LogLine, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	from = max(from, r.dropped)
	to = min(to, r.dropped+uint64(len(r.lines)-r.start))
	var batch []LogLine
	bytes := 0
	for ; from < to && len(batch) < logBatchLines; from++ {
		l := r.lines[r.start+int(from-r.dropped)]
		cost := jsonCost(l)
		if len(batch) > 0 && bytes+cost > logBatchBytes {
			break
		}
		batch = append(batch, l)
		bytes += cost
	}
	return batch, from
}

// watch returns a channel that receives a value when lines have been
// added since it was last read, until cancel is called.
func (r *logRing) watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		delete(r.subs, ch)
		r.mu.Unlock()
	}
}
