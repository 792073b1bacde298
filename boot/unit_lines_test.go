package boot

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// TestForEachLine splits a container's output into log lines: a line
// longer than the limit comes in pieces and never stops the reading.
func TestForEachLine(t *testing.T) {
	const max = 16
	long := strings.Repeat("x", max)
	tests := []struct {
		name, in string
		want     []string
	}{
		{"empty", "", nil},
		{"lines", "a\nb\n", []string{"a", "b"}},
		{"crlf", "a\r\nb\r\n", []string{"a", "b"}},
		{"empty lines", "\n\na\n", []string{"", "", "a"}},
		{"last line without a newline", "a\nb", []string{"a", "b"}},
		{"line of max-1 bytes", long[1:] + "\nz\n", []string{long[1:], "z"}},
		{"line of exactly max bytes", long + "\nz\n", []string{long, "z"}},
		{"line of max+1 bytes", long + "y\nz\n", []string{long, "y", "z"}},
		{"line of 3 max bytes", long + long + long + "\nafter\n", []string{long, long, long, "after"}},
		{"long line, then an empty one", long + "\n\n", []string{long, ""}},
		{"line of exactly max bytes, CRLF", long + "\r\nz\n", []string{long, "z"}},
		{"line of max-1 bytes, CRLF", long[1:] + "\r\nz\n", []string{long[1:], "z"}},
		{"a CR at the cut, not before a LF", long[1:] + "\ry\n", []string{long[1:], "\ry"}},
		{"a CR at the cut, then the end", long[1:] + "\r", []string{long[1:]}},
		{"a CR at the cut, then a CRLF", long[1:] + "\r\r\nz\n", []string{long[1:], "z"}},
		{"a CR ends a short last line", "abc\r", []string{"abc"}},
		{"a CR ends a short line before the end", "abc\r\ndef\r", []string{"abc", "def"}},
		{"a CR at the cut, then a long line", long[1:] + "\r" + long + "\n", []string{long[1:], "\r" + long}},
	}
	for _, tc := range tests {
		// Whole, and a byte at a time, as a pipe may deliver it.
		for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
			var got []string
			forEachLine(r, max, func(s string) { got = append(got, s) })
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("%s (%T): %q, want %q", tc.name, r, got, tc.want)
			}
		}
	}
}

// TestForEachLineCRNotHeld: a piece that fills the buffer and ends in a
// CR is logged at once, not held until the container writes again (R1):
// here the writer writes nothing more until it has been.
func TestForEachLineCRNotHeld(t *testing.T) {
	const max = 16
	pr, pw := io.Pipe()
	lines := make(chan string, 4)
	go forEachLine(pr, max, func(s string) { lines <- s })
	piece := strings.Repeat("x", max-1)
	go pw.Write([]byte(piece + "\r"))
	select {
	case got := <-lines:
		if got != piece {
			t.Errorf("got %q, want %q", got, piece)
		}
	case <-time.After(30 * time.Second): // a hang guard: the line waited for more output
		t.Fatal("a piece ending in a CR was not logged until more output came")
	}
	pw.Write([]byte("\nnext\n"))
	if got := <-lines; got != "next" {
		t.Errorf("after the CR's LF: %q, want %q", got, "next")
	}
	pw.Close()
}
