package boot

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
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
		{"a CR at the cut, not before a LF", long[1:] + "\ry\n", []string{long[1:] + "\r", "y"}},
		{"a CR at the cut, then the end", long[1:] + "\r", []string{long[1:] + "\r"}},
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
