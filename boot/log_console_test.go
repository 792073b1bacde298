package boot

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// flushedLog is a test's log buffer, read once the logger has written
// what was logged (Flush).
type flushedLog struct {
	l *Logger
	b *bytes.Buffer
}

func (f flushedLog) String() string {
	f.l.Flush(5 * time.Second)
	return f.b.String()
}

// stuckConsole is a console whose writes block until open is closed, as
// a serial tty held by XOFF; it keeps what it was given.
type stuckConsole struct {
	open chan struct{}
	mu   sync.Mutex
	b    bytes.Buffer
}

func (c *stuckConsole) Write(p []byte) (int, error) {
	<-c.open
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Write(p)
}

// lines is what the console was given, each line without its stamp.
func (c *stuckConsole) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(c.b.String(), "\n"), "\n") {
		_, msg, _ := strings.Cut(l, "] ")
		out = append(out, msg)
	}
	return out
}

// logMany logs n lines "line i" on a goroutine and reports whether that
// returned within 10 s (it takes milliseconds).
func logMany(l *Logger, n int) bool {
	done := make(chan struct{})
	go func() {
		for i := range n {
			l.Printf("line %d", i)
		}
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// TestLogConsoleStuck: a console that blocks forever does not block
// logging, and Flush gives up after its limit.
func TestLogConsoleStuck(t *testing.T) {
	c := &stuckConsole{open: make(chan struct{})} // never opened
	l := NewLogger(c)
	if !logMany(l, 5000) {
		t.Fatal("5000 Printf calls did not return within 10 s while the console was stuck")
	}
	done := make(chan bool)
	go func() { done <- l.Flush(100 * time.Millisecond) }()
	select {
	case ok := <-done:
		if ok {
			t.Error("Flush reported the lines written to a stuck console")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Flush(100ms) did not return within 5 s on a stuck console")
	}
}

// TestLogConsoleDropped: once a stuck console moves again it shows the
// lines queued in order, then how many were dropped where they were, then
// the later lines; Flush then sees them all written.
func TestLogConsoleDropped(t *testing.T) {
	c := &stuckConsole{open: make(chan struct{})}
	l := NewLogger(c)
	const n = 5000
	if !logMany(l, n) {
		t.Fatal("Printf blocked on a stuck console")
	}
	close(c.open)
	if !l.Flush(5 * time.Second) {
		t.Fatal("Flush: the lines were not written within 5 s of the console moving")
	}
	l.Printf("after") // the console has caught up: shown
	l.Flush(5 * time.Second)
	var want []string
	for i := range consoleMaxLines {
		want = append(want, fmt.Sprintf("berth: line %d", i))
	}
	want = append(want, fmt.Sprintf("berth: %d log lines not shown on the console (it was not keeping up)", n-consoleMaxLines), "berth: after")
	got := c.lines()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("console: %d lines, want %d; from line %d: got %q, want %q",
			len(got), len(want), firstDiff(got, want), tail(got, firstDiff(got, want)), tail(want, firstDiff(got, want)))
	}
}

// firstDiff is the index of the first line where got and want differ.
func firstDiff(got, want []string) int {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return i
}

// tail is up to three lines of s from i.
func tail(s []string, i int) []string { return s[min(i, len(s)):min(i+3, len(s))] }

// TestLogConsoleStamp: a line keeps the time it was logged at, not the
// time the console took it.
func TestLogConsoleStamp(t *testing.T) {
	c := &stuckConsole{open: make(chan struct{})}
	l := NewLogger(c)
	before := Uptime()
	if !logMany(l, 1) {
		t.Fatal("Printf blocked on a stuck console")
	}
	after := Uptime()
	time.Sleep(20 * time.Millisecond) // the console takes it well after
	close(c.open)
	l.Flush(5 * time.Second)
	c.mu.Lock()
	line := c.b.String()
	c.mu.Unlock()
	var stamp float64
	if _, err := fmt.Sscanf(line, "[%f] berth: line 0", &stamp); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	if stamp < before-1e-6 || stamp > after+1e-6 {
		t.Errorf("stamp %.6f, logged between %.6f and %.6f", stamp, before, after)
	}
}

// TestLogConsoleOwnReserve: a container flooding a console that does not
// keep up drops its own lines once it fills three quarters of the queue;
// berth's lines logged meanwhile still reach the console, in order, with
// the notice of what was dropped.
func TestLogConsoleOwnReserve(t *testing.T) {
	c := &stuckConsole{open: make(chan struct{})}
	l := NewLogger(c)
	for i := range 2000 {
		l.Output("flood", fmt.Sprintf("y %d", i))
		if i%100 == 0 {
			l.Printf("restart %d", i/100)
		}
	}
	close(c.open)
	if !l.Flush(5 * time.Second) {
		t.Fatal("Flush: the lines were not written within 5 s of the console moving")
	}
	got := c.lines()
	var own, flood int
	for _, line := range got {
		switch {
		case strings.HasPrefix(line, "berth: restart "):
			if want := fmt.Sprintf("berth: restart %d", own); line != want {
				t.Errorf("berth's line %q, want %q", line, want)
			}
			own++
		case strings.HasPrefix(line, "flood | y "):
			flood++
		}
	}
	if own != 20 {
		t.Errorf("%d of berth's 20 lines reached the console", own)
	}
	if flood > containerMaxLines || flood < containerMaxLines-20 {
		t.Errorf("%d of the container's lines shown, want about %d (its share of the queue)", flood, containerMaxLines)
	}
	if !strings.Contains(strings.Join(got, "\n"), "log lines not shown on the console (it was not keeping up)") {
		t.Error("no notice of the dropped lines")
	}
}
