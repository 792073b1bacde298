package boot

import (
	"strings"
	"testing"
	"time"
)

// TestEscapeControls: a container's line on the console cannot carry a
// control character (a carriage return that overwrites the line with a
// forged one of berth's, an escape sequence), and nothing else changes.
func TestEscapeControls(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"tab\tkept", "tab\tkept"},
		{"héllo ✓", "héllo ✓"},
		{"\rberth: container web failed", `\x0dberth: container web failed`},
		{"\x1b[2J\x1b[Hclear", `\x1b[2J\x1b[Hclear`},
		{"bell\a del\x7f nul\x00", `bell\x07 del\x7f nul\x00`},
		{"c1 \u009b31m csi", `c1 \u009b31m csi`},
		{"invalid \xff\xfe utf-8", "invalid \xff\xfe utf-8"},
		{"raw 8-bit csi \x9b31m", `raw 8-bit csi \x9b31m`},
		{"real \uFFFD then \x1b[0m", "real \uFFFD then \\x1b[0m"}, // a valid U+FFFD stays whole
		{"\xef\xbf\xbd\xff\x1b", "\uFFFD\xff\\x1b"},
		{"", ""},
	} {
		if got := escapeControls(tc.in); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestConsoleLineCut: the console shows at most 512 bytes of a
// container's line, cut on a character, and says how much more there is.
func TestConsoleLineCut(t *testing.T) {
	for _, tc := range []struct {
		line, want string
	}{
		{strings.Repeat("a", 512), strings.Repeat("a", 512)},
		{strings.Repeat("a", 513), strings.Repeat("a", 512) + "… (1 more bytes: berth logs web)"},
		{strings.Repeat("a", 511) + "é", strings.Repeat("a", 511) + "… (2 more bytes: berth logs web)"},
		{strings.Repeat("\x1b", 513), strings.Repeat(`\x1b`, 512) + "… (1 more bytes: berth logs web)"},
		{strings.Repeat("\xa0", 600), strings.Repeat("\xa0", 512) + "… (88 more bytes: berth logs web)"},
	} {
		var out strings.Builder
		l := NewLogger(&out)
		l.Output("web", tc.line)
		l.Flush(5 * time.Second)
		_, got, _ := strings.Cut(strings.TrimSuffix(out.String(), "\n"), "web | ")
		if got != tc.want {
			t.Errorf("%d-byte line: console shows %d bytes %q, want %q", len(tc.line), len(got), got, tc.want)
		}
	}
}

// TestMessageEscaped: berth's own messages, which carry names from disks
// and clients, reach the console without control characters but their
// line breaks, and a later line cannot pass for one of berth's.
func TestMessageEscaped(t *testing.T) {
	for _, tc := range []struct{ arg, want string }{
		{"plain", "berth: warning: plain\n"},
		{"e\x1b[2J\x1b]0;pwned\a\x1b[31mFAKE", `berth: warning: e\x1b[2J\x1b]0;pwned\x07\x1b[31mFAKE` + "\n"},
		{"x\r[  1.000000] berth: forged", `berth: warning: x\x0d[  1.000000] berth: forged` + "\n"},
		{"a.toml is invalid:\na.toml:1: x\na.toml:2: y\n", "berth: warning: a.toml is invalid:\n  a.toml:1: x\n  a.toml:2: y\n"},
		{"n\n[  1.000000] berth: forged", "berth: warning: n\n  [  1.000000] berth: forged\n"},
	} {
		var out strings.Builder
		l := NewLogger(&out)
		l.Printf("warning: %s", tc.arg)
		l.Flush(5 * time.Second)
		_, got, _ := strings.Cut(out.String(), "] ")
		if got != tc.want {
			t.Errorf("%q: console shows %q, want %q", tc.arg, got, tc.want)
		}
	}
}
