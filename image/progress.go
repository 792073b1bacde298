package image

import (
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// progress reports an unpack's or a pack's progress: on a terminal one
// line redrawn in place five times a second, elsewhere a line a second.
type progress struct {
	w      io.Writer
	verb   string // "unpacking", "packing"
	tty    bool
	total  int64        // bytes source counts towards; 0 when unknown
	source func() int64 // bytes of the input consumed so far
	every  time.Duration
	last   time.Time
	shown  bool
	calls  int
}

// Progress intervals: a line a second, or a redraw five times a second on
// a terminal (variables: the tests print at every 32nd entry).
var progressEvery, progressEveryTTY = time.Second, 200 * time.Millisecond

// newProgress returns a progress for w, which may be nil, shown as verb
// ("unpacking", "packing").
func newProgress(w io.Writer, verb string, total int64) *progress {
	p := &progress{w: w, verb: verb, total: total, every: progressEvery, last: time.Now()}
	if w != nil && isTerminal(w) {
		p.tty, p.every = true, progressEveryTTY
	}
	return p
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// tick may print the state after an entry: entries so far, and the file
// bytes they hold (written, or being written).
func (p *progress) tick(entries int, bytes int64) {
	if p.w == nil {
		return
	}
	if p.calls++; p.calls%32 != 0 {
		return
	}
	now := time.Now()
	if now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	line := fmt.Sprintf("%s: %d entries, %.1f MiB", p.verb, entries, float64(bytes)/(1<<20))
	if p.total > 0 && p.source != nil {
		line += fmt.Sprintf(", %3.0f%%", 100*float64(p.source())/float64(p.total))
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = true
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// done clears the terminal line.
func (p *progress) done() {
	if p.tty && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
