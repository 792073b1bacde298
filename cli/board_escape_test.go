package cli

import (
	"bytes"
	"strings"
	"testing"

	"berth/board"
)

// TestBoardStringsEscaped: a board's model and compatible strings come
// from its firmware (DMI, the device tree) and reach berth board's and
// berth status's tables with their control characters escaped, a tab
// too (it would start a column), so that a hostile or broken firmware
// field cannot drive the operator's terminal; plain strings are as read.
func TestBoardStringsEscaped(t *testing.T) {
	hostile := board.Board{
		Model:      "Evil\x1b[2J\x1b[H Board\r\tforged\u009b31m\x9b\nberth: x",
		Compatible: []string{"vendor,a\x07", "vendor,b\x00c"},
		Source:     "/proc/device-tree/model", Arch: "arm64",
		Profile: board.Profile{Name: "generic"}, Reason: "no specific profile",
	}
	var out bytes.Buffer
	printBoard(&out, hostile, true)
	table := out.String() + describeBoard(hostile)
	if i := strings.IndexFunc(table, func(r rune) bool {
		return r != '\n' && (r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\ufffd')
	}); i >= 0 {
		t.Errorf("a control character at %d reaches the terminal: %q", i, table)
	}
	for _, w := range []string{`Evil\x1b[2J\x1b[H Board\x0d\x09forged\u009b31m\x9b\x0aberth: x`, `vendor,a\x07, vendor,b\x00c`} {
		if !strings.Contains(table, w) {
			t.Errorf("lacks %s: %q", w, table)
		}
	}
	if n := strings.Count(out.String(), "\n"); n != 9 {
		t.Errorf("%d lines, want 9: %q", n, out.String())
	}
	if got := describeBoard(hostile); !strings.HasSuffix(got, " (profile generic)") {
		t.Errorf("status line %q", got)
	}

	plain := board.Board{Model: "Raspberry Pi 4 Model B Rev 1.4", Compatible: []string{"raspberrypi,4-model-b", "brcm,bcm2711"}}
	out.Reset()
	printBoard(&out, plain, false)
	for _, w := range []string{"model          Raspberry Pi 4 Model B Rev 1.4\n", "compatible     raspberrypi,4-model-b, brcm,bcm2711\n"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("lacks %q:\n%s", w, out.String())
		}
	}
	if got := describeBoard(plain); got != "Raspberry Pi 4 Model B Rev 1.4 (profile )" {
		t.Errorf("status line %q", got)
	}
}
