package boot

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// The console queue. On an appliance the console is a serial tty: at
// 115200 baud it writes ~11 KB/s, and it blocks altogether while the
// other end holds it (XOFF, hardware flow control). Writing to it while
// holding the log's lock would stop every goroutine that logs — the
// supervisor loop, the only one that pings the watchdog, included — until
// the console drained, and a stalled console would let the watchdog reset
// the board. So each line, stamped when it is logged, goes into a bounded
// queue that one writer goroutine empties, in order; Printf and Output
// never wait for the console. When the queue is full a line is dropped
// from the console only (as PID 1 /dev/kmsg keeps it; berth logs keeps a
// container's)
// and counted; the console then shows, where the lines went missing,
// "berth: N log lines not shown on the console (it was not keeping up)".

// The queue's bounds, the lines being written counted in: 1,024 lines,
// 256 KiB — ~23 s of a 115200-baud console, far more than a boot or a
// shutdown logs at once, and little memory. The notice of dropped lines
// may go one line over. A container's lines may fill three quarters of
// it; the last quarter is berth's own: a container that floods the
// console drops its own lines, never berth's notices of an OOM kill, an
// unhealthy container or a restart, which a board with only a serial
// console would otherwise lose (review: a flood hid six restarts).
const (
	consoleMaxLines = 1024
	consoleMaxBytes = 256 << 10

	containerMaxLines = consoleMaxLines * 3 / 4
	containerMaxBytes = consoleMaxBytes * 3 / 4
)

// consoleFlushWait is how long berth waits for the console to show its
// last lines before it reboots or exits: they are shown when the console
// works, and a stuck one does not stop the reboot.
const consoleFlushWait = 2 * time.Second

// consoleQueue is the lines waiting for the console writer, guarded by
// the Logger's mu.
type consoleQueue struct {
	lines   []string // stamped lines not yet taken by the writer
	pending int      // lines queued or being written
	bytes   int      // their bytes
	dropped int      // lines dropped since the last notice
	// added and written count the lines queued and written (or lost to a
	// writer's panic) since the start: Flush waits for written to reach
	// added. progress, when set, is closed as written grows.
	added, written uint64
	progress       chan struct{}
	// writing is set while the writer goroutine runs.
	writing bool
}

// queueConsole queues one stamped line for the console, berth's own or
// a container's (own false), or drops it when the queue is full for it,
// and starts the writer if it is not running. l.mu is held.
func (l *Logger) queueConsole(line string, own bool) {
	q := &l.console
	maxLines, maxBytes := consoleMaxLines, consoleMaxBytes
	if !own {
		maxLines, maxBytes = containerMaxLines, containerMaxBytes
	}
	if q.pending+1 > maxLines || q.bytes+len(line) > maxBytes {
		q.dropped++
		return
	}
	if q.dropped > 0 {
		q.add(droppedNotice(q.dropped))
		q.dropped = 0
	}
	q.add(line)
	if !q.writing {
		q.writing = true
		go l.writeConsole()
	}
}

// add queues line.
func (q *consoleQueue) add(line string) {
	q.lines = append(q.lines, line)
	q.pending++
	q.bytes += len(line)
	q.added++
}

// done accounts for batch, written (or lost).
func (q *consoleQueue) done(batch []string) {
	for _, s := range batch {
		q.bytes -= len(s)
	}
	q.pending -= len(batch)
	q.written += uint64(len(batch))
	if q.progress != nil {
		close(q.progress)
		q.progress = nil
	}
}

// droppedNotice is the console line that stands for n dropped lines.
func droppedNotice(n int) string {
	return fmt.Sprintf("[%12.6f] berth: %d log lines not shown on the console (it was not keeping up)\n", Uptime(), n)
}

// writeConsole is the console writer: it writes what is queued, a batch
// at a time in one write, until the queue is empty, then ends (the next
// line starts it again). A panic (of the console's Write) loses its batch
// but never ends PID 1.
func (l *Logger) writeConsole() {
	var batch []string
	defer func() {
		if r := recover(); r != nil {
			l.consolePanicked(r, batch)
		}
	}()
	for {
		batch = l.nextBatch()
		if batch == nil {
			return
		}
		_, _ = io.WriteString(l.w, strings.Join(batch, "")) // a console that fails loses the lines
		l.mu.Lock()
		l.console.done(batch)
		l.mu.Unlock()
		batch = nil
	}
}

// nextBatch takes the queued lines, the notice of lines dropped since the
// last one ending them; with none, it marks the writer ended and returns
// nil.
func (l *Logger) nextBatch() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := &l.console
	if len(q.lines) == 0 && q.dropped > 0 {
		q.add(droppedNotice(q.dropped))
		q.dropped = 0
	}
	if len(q.lines) == 0 {
		q.writing = false
		return nil
	}
	batch := q.lines
	q.lines = nil
	return batch
}

// consolePanicked counts the batch a panic lost as dropped, says so in
// /dev/kmsg, and restarts the writer for what is queued.
func (l *Logger) consolePanicked(r any, batch []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	q := &l.console
	q.done(batch)
	q.dropped += len(batch)
	if l.kmsg != nil {
		fmt.Fprintf(l.kmsg, "<3>berth: panic writing to the console: %v\n", r)
	}
	if len(q.lines) > 0 {
		go l.writeConsole() // each restart takes queued lines: no endless loop
		return
	}
	q.writing = false
}

// Flush waits until the lines logged before it are written to the
// console, for at most limit, and reports whether they were. Lines
// dropped from the console are not waited for.
func (l *Logger) Flush(limit time.Duration) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	l.mu.Lock()
	q := &l.console
	target := q.added
	for q.written < target {
		if q.progress == nil {
			q.progress = make(chan struct{})
		}
		progress := q.progress
		l.mu.Unlock()
		select {
		case <-progress:
		case <-deadline.C:
			return false
		}
		l.mu.Lock()
	}
	l.mu.Unlock()
	return true
}
