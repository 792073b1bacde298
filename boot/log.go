package boot

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Logger writes berth's log lines to the console, each stamped with the
// time since boot (CLOCK_BOOTTIME, the clock of /proc/uptime and of the
// kernel's own console stamps, so berth's lines sort in with the kernel's),
// and, as PID 1, to /dev/kmsg, so that dmesg and pstore keep them.
//
// The console is written by a goroutine of its own from a bounded queue
// (log_console.go): logging never waits for a slow or stalled console.
type Logger struct {
	mu    sync.Mutex // guards kmsg, its writes and console
	w     io.Writer  // the console: written by the console writer only
	kmsg  *os.File
	debug bool
	// console is the lines waiting for w.
	console consoleQueue
}

// NewLogger logs to w. Lines reach w on another goroutine: Flush waits
// for them.
func NewLogger(w io.Writer) *Logger { return &Logger{w: w} }

// Uptime returns the seconds since boot.
func Uptime() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

// Printf logs one berth message. Its control characters are shown
// escaped as a container's are (see Output), but for its line breaks (a
// config's errors come as a list), and each line after the first is
// indented: names that reach a message from a disk or a client (an entry
// in berth's state, a config file's name) must not drive the terminal
// nor start a line that looks like one of berth's own.
func (l *Logger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.line("berth: "+escapeMessage(msg), true)
}

// escapeMessage escapes s's control characters but tab and newline, and
// indents the lines after the first by two spaces.
func escapeMessage(s string) string {
	s = strings.TrimRight(s, "\n")
	if !strings.Contains(s, "\n") {
		return escapeControls(s) // most messages: no split to allocate
	}
	lines := strings.Split(s, "\n")
	for i, ln := range lines {
		lines[i] = escapeControls(ln)
	}
	return strings.Join(lines, "\n  ")
}

// Debugf logs a message only with berth.debug.
func (l *Logger) Debugf(format string, args ...any) {
	if l.debug {
		l.Printf("debug: "+format, args...)
	}
}

// Output logs one line a container wrote, prefixed with its name. It goes
// to the console only: the container's own log ring keeps it as written.
// Control characters are shown escaped (a tab kept): a container must not
// be able to move the cursor, clear the console or write what looks like
// a line of berth's own after a carriage return.
//
// A line is shown up to maxConsoleLine bytes as written (escaped), the
// rest counted: at 115200 baud a 64 KiB line would take the serial
// console 6 s, during which every later line of berth's would wait in the
// console queue (and, the queue full, be dropped from the console).
func (l *Logger) Output(name, line string) {
	if len(line) <= maxConsoleLine {
		l.line(name+" | "+escapeControls(line), false)
		return
	}
	// Cut the line as written, on a character when one starts within
	// the last three bytes, then escape what is shown.
	cut := maxConsoleLine
	for back := 0; back < utf8.UTFMax-1 && !utf8.RuneStart(line[cut]); back++ {
		cut--
	}
	if !utf8.RuneStart(line[cut]) {
		cut = maxConsoleLine
	}
	l.line(fmt.Sprintf("%s | %s… (%d more bytes: berth logs %s)", name, escapeControls(line[:cut]), len(line)-cut, name), false)
}

// maxConsoleLine is the most of a container's line the console shows.
const maxConsoleLine = 512

// EscapeText is s for a table cell of text that berth did not write (a
// board's DMI or device-tree strings): its control characters escaped as
// the console escapes a container's line, and a tab too, which would
// start a column. The string is as it was when it has none.
func EscapeText(s string) string {
	return strings.ReplaceAll(escapeControls(s), "\t", `\x09`)
}

// EscapeLine is a container's line as the console shows it: its control
// characters but tab escaped (escapeControls). berth logs prints lines
// so on a terminal.
func EscapeLine(s string) string { return escapeControls(s) }

// escapeControls writes each control character of s but tab — C0, DEL
// and C1 (U+0080-U+009F, which some terminals take as ESC sequences) — as
// \xNN or \u00NN, and so a raw byte 0x80-0x9f, leaving everything else
// (other invalid UTF-8 included) as it is.
func escapeControls(s string) string {
	control := func(r rune) bool { return (r < 0x20 && r != '\t') || (r >= 0x7f && r <= 0x9f) }
	if !strings.ContainsFunc(s, control) && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		invalid := r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") // not a real U+FFFD
		switch {
		case invalid && s[i] >= 0x80 && s[i] <= 0x9f:
			fmt.Fprintf(&b, "\\x%02x", s[i]) // a raw 8-bit C1 byte, CSI to a Latin-1 console
		case invalid:
			b.WriteByte(s[i]) // another invalid byte: kept, as the loop moves one byte on
		case r < 0x80 && control(r):
			fmt.Fprintf(&b, "\\x%02x", r)
		case control(r):
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// line logs s, stamped now, to the console (queued: see queueConsole)
// and, when it is berth's own (own; not a container's), to /dev/kmsg.
func (l *Logger) line(s string, own bool) {
	s = strings.TrimRight(s, "\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	// Stamped under the lock, so that the console's stamps are in order.
	l.queueConsole(fmt.Sprintf("[%12.6f] %s\n", Uptime(), s), own)
	if own && l.kmsg != nil {
		// Level 7 (debug): the kernel does not echo it on a console that
		// already shows the line above.
		for _, part := range strings.Split(s, "\n") {
			fmt.Fprintf(l.kmsg, "<7>%s\n", part)
		}
	}
}

// setupLogging sends berth's log to /dev/kmsg too (PID 1 only), with the
// kernel's rate limit for /dev/kmsg writers lifted: it is for programs
// that are not the init.
func (b *booter) setupLogging() error {
	if !b.opts.PID1 {
		return nil
	}
	_ = os.WriteFile("/proc/sys/kernel/printk_devkmsg", []byte("on\n"), 0)
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		b.log.Printf("warning: no kernel log: %v", err)
		return nil
	}
	b.log.mu.Lock()
	b.log.kmsg = f
	b.log.mu.Unlock()
	return nil
}
