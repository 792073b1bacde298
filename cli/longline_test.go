package cli

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBootLongLine: a container that writes a line longer than the log
// keeps whole (64 KiB) has it kept as pieces, and its later output still
// reaches the log: the reading never stops at a long line.
func TestBootLongLine(t *testing.T) {
	_, log, _ := bootConfig(t, `[[container]]
name = "long"
image = "bb.tar.zst"
log_size = "1M"
log_console = false
command = ["sh", "-c", "head -c 200000 /dev/zero | tr '\\0' x; echo; echo after; exec sleep 1000"]
`)
	var out string
	waitFor(t, "the line after the long one", log, func() bool {
		_, out, _ = berth(t, "logs", "long")
		return strings.Contains(out, "after\n")
	})
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := []int{65536, 65536, 65536, 200000 - 3*65536, len("after")}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d", len(lines), len(want))
	}
	for i, n := range want {
		if len(lines[i]) != n {
			t.Errorf("line %d: %d bytes, want %d", i+1, len(lines[i]), n)
		}
	}
}

// TestLogsBytesAsWritten: berth logs gives a line's bytes as the
// container wrote them, not valid UTF-8 included (the control socket's
// JSON turned each such byte into U+FFFD); --json carries them in raw.
func TestLogsBytesAsWritten(t *testing.T) {
	_, log, _ := bootConfig(t, `[[container]]
name = "bytes"
image = "bb.tar.zst"
log_console = false
stop_signal = "SIGKILL"
command = ["sh", "-c", "printf 'a\\377\\376\\200b\\033[31mred\\rX\\n'; printf 'plain\\n'; exec sleep 1000"]
`)
	var out string
	waitFor(t, "the lines", log, func() bool {
		_, out, _ = berth(t, "logs", "bytes")
		return strings.Contains(out, "plain\n")
	})
	if want := "a\xff\xfe\x80b\x1b[31mred\rX\nplain\n"; out != want {
		t.Errorf("berth logs: %q, want %q", out, want)
	}
	// On a terminal the container's control characters are escaped, as
	// the console shows them (review: they set the admin's terminal's
	// title and forged lines); --raw gives the bytes there too.
	shown, _ := onTerminal(t, unix.Winsize{}, "", "logs", "bytes")
	if !strings.Contains(shown, `a`+"\xff\xfe"+`\x80b\x1b[31mred\x0dX`) || strings.Contains(shown, "\x1b") {
		t.Errorf("berth logs on a terminal: %q", shown)
	}
	if shown, _ = onTerminal(t, unix.Winsize{}, "", "logs", "--raw", "bytes"); !strings.Contains(shown, "\x1b[31mred") { // onTerminal drops \r
		t.Errorf("berth logs --raw on a terminal: %q", shown)
	}
	_, js, _ := berth(t, "logs", "--json", "bytes")
	if !strings.Contains(js, `"raw":"Yf/+gGIbWzMxbXJlZA1Y"`) || strings.Count(js, `"raw"`) != 1 {
		t.Errorf("berth logs --json: %s", js)
	}
}
