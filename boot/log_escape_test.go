package boot

import "testing"

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
		{"", ""},
	} {
		if got := escapeControls(tc.in); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}
