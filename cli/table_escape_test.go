package cli

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"berth/boot"
)

// TestTableCellsEscaped: text berth did not write reaches berth ps's and
// berth status's tables as text: an image's command in a last exit
// ("could not start: exec …", review of stop 44: it set the terminal's
// title, cleared the screen and split the table), a registry's answer in
// a waiting state, a rollback's reason. Its control characters are
// escaped, it is cut to maxCell characters, one row stays one line; a
// plain one is as it was.
func TestTableCellsEscaped(t *testing.T) {
	hostile := "exec /bin/\x1b]0;PWNED\x07\x1b[2J\x1b[31mRED\x1b[0m\rberth: fake\n\tTAB\u009b" + strings.Repeat("A", 300)
	var out bytes.Buffer
	// A raw 0xff is text/tabwriter's escape character: it joined the
	// columns up to the next one. Shown as U+FFFD, as --json does.
	printProcesses(&out, []boot.Process{{Name: "inv", State: "waiting", Detail: "a\xffb", LastExit: "c\xfe\xffd"}})
	if !strings.Contains(out.String(), "waiting (a\uFFFDb)") || strings.Contains(out.String(), "\xff") {
		t.Errorf("invalid UTF-8 in a cell:\n%s", out.String())
	}
	out.Reset()
	printProcesses(&out, []boot.Process{
		{Name: "evil", State: "waiting", Detail: "the registry answered 404: x\r\ny", Health: "unhealthy\x1b[2J", LastExit: "could not start: " + hostile},
		{Name: "plain", State: "running", Pid: 7, LastExit: "exited with status 3"},
	})
	w := tabwriter.NewWriter(&out, 0, 4, 2, ' ', 0) // as berth status
	printGeneration(w, &boot.GenerationInfo{Current: 2, State: "committed", Unrecorded: "disk \x1b[K full",
		LastRollback: &boot.Rollback{From: 3, To: 2, Reason: "container evil failed: " + hostile, Time: time.Unix(0, 0)}})
	w.Flush()
	text := out.String()
	if i := strings.IndexFunc(text, func(r rune) bool {
		return r != '\n' && (r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\ufffd')
	}); i >= 0 {
		t.Errorf("a control character at %d reaches the terminal: %q", i, text)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 6 { // header, two rows, generation, rollback, record
		t.Fatalf("%d lines, want 6:\n%s", len(lines), text)
	}
	for _, w := range []string{
		`could not start: exec /bin/\x1b]0;PWNED\x07\x1b[2J\x1b[31mRED\x1b[0m\x0dberth: fake\x0a\x09TAB\u009bAAA`,
		`waiting (the registry answered 404: x\x0d\x0ay)`, `unhealthy\x1b[2J`, `disk \x1b[K full`,
		"container evil failed: exec /bin/\\x1b]0;PWNED",
	} {
		if !strings.Contains(text, w) {
			t.Errorf("lacks %s:\n%s", w, text)
		}
	}
	for _, l := range []int{1, 4} {
		if !strings.HasSuffix(lines[l], "A…") || strings.Count(lines[l], "A") > maxCell {
			t.Errorf("line %d not cut to %d characters: %q", l, maxCell, lines[l])
		}
	}
	if !strings.Contains(lines[2], "plain") || !strings.HasSuffix(lines[2], "  exited with status 3") {
		t.Errorf("plain row %q", lines[2])
	}
}

// TestDescribeHealthPreviousRun: berth status says when the last check
// shown is the previous run's (restarted, none in this run yet).
func TestDescribeHealthPreviousRun(t *testing.T) {
	at, code := time.Now().Add(-3*time.Second), 0
	h := boot.HealthInfo{Container: "nuh", Health: "starting", Running: true, LastCheck: &at, LastExitCode: &code, PreviousRun: true}
	if got := describeHealth(h); !regexp.MustCompile(`^nuh: starting, failing streak 0, last check \(its previous run's\) [0-9]+s ago: status 0$`).MatchString(got) {
		t.Errorf("%q", got)
	}
	h.PreviousRun = false
	if got := describeHealth(h); strings.Contains(got, "previous") {
		t.Errorf("%q", got)
	}
}

// TestErrorsEscaped: an error berth prints may quote what an image or a
// registry wrote (an index's platform, a config's architecture): its
// control characters reach stderr escaped, each line of a many-line
// error kept as a line.
func TestErrorsEscaped(t *testing.T) {
	var stderr bytes.Buffer
	c := &ctx{stdout: io.Discard, stderr: &stderr}
	c.errorf("pull: platform %s not in the image\nsecond\tline\rX", "linux/\x1b]0;PWNED\x07\x1b[2J\u009b")
	want := "berth: pull: platform linux/\\x1b]0;PWNED\\x07\\x1b[2J\\u009b not in the image\nsecond\tline\\x0dX\n"
	if stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
}
