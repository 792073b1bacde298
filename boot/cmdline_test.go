package boot

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestParseCmdline splits command lines as the kernel does.
func TestParseCmdline(t *testing.T) {
	tests := []struct {
		line string
		want map[string]string
	}{
		{"console=ttyS0 panic=-1 quiet\n", map[string]string{"console": "ttyS0", "panic": "-1", "quiet": ""}},
		{"  berth.debug\tberth.panic=poweroff:5  ", map[string]string{"berth.debug": "", "berth.panic": "poweroff:5"}},
		{`berth.config="/etc/my config.toml" x="a b"c`, map[string]string{"berth.config": "/etc/my config.toml", "x": "a bc"}},
		{`"quoted=both sides" dyndbg="file x.c +p"`, map[string]string{"quoted": "both sides", "dyndbg": "file x.c +p"}},
		{"some-flag=1 root=PARTUUID=abc-01 a=b=c", map[string]string{"some_flag": "1", "root": "PARTUUID=abc-01", "a": "b=c"}},
		{`unterminated="a b`, map[string]string{"unterminated": "a b"}},
		{"", map[string]string{}},
	}
	for _, tc := range tests {
		if got := parseCmdline(tc.line); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseCmdline(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}

// TestPanicAction: berth.panic's action and delay, at the delay's bounds
// (0 and a day) and just past them. A SECONDS outside 0-86400 — past a
// day, negative, past an int, not a number — is refused with a warning
// that names it and says what applies instead: the action's default
// delay (10 s for reboot, none for poweroff and halt).
func TestPanicAction(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		line   string
		action Action
		delay  time.Duration
		warn   string
	}{
		{"berth.panic=poweroff", PowerOff, 0, ""},
		{"berth.panic=halt:5", Halt, 5 * time.Second, ""},
		{"berth.panic=reboot:0", Reboot, 0, ""},
		{"berth.panic=reboot:86400", Reboot, day, ""},
		{"berth.panic=reboot:86401", Reboot, 10 * time.Second,
			`berth: warning: berth.panic=reboot:86401: "86401" is not 0 to 86400 seconds; reboot after 10s`},
		{"berth.panic=reboot:99999999999999999999", Reboot, 10 * time.Second,
			`berth: warning: berth.panic=reboot:99999999999999999999: "99999999999999999999" is not 0 to 86400 seconds; reboot after 10s`},
		{"berth.panic=reboot:-1", Reboot, 10 * time.Second,
			`berth: warning: berth.panic=reboot:-1: "-1" is not 0 to 86400 seconds; reboot after 10s`},
		{"berth.panic=reboot:soon", Reboot, 10 * time.Second,
			`berth: warning: berth.panic=reboot:soon: "soon" is not 0 to 86400 seconds; reboot after 10s`},
		{"berth.panic=halt:86401", Halt, 0,
			`berth: warning: berth.panic=halt:86401: "86401" is not 0 to 86400 seconds; halt at once`},
		{"berth.panic=poweroff:", PowerOff, 0,
			`berth: warning: berth.panic=poweroff:: "" is not 0 to 86400 seconds; power off at once`},
	} {
		var log strings.Builder
		b := &booter{log: NewLogger(&log), panicAction: Reboot, panicDelay: 10 * time.Second}
		b.applyCmdline("quiet " + tc.line)
		b.log.Flush(time.Second)
		if b.panicAction != tc.action || b.panicDelay != tc.delay {
			t.Errorf("%s: %v after %v, want %v after %v", tc.line, b.panicAction, b.panicDelay, tc.action, tc.delay)
		}
		if got := strings.TrimSpace(log.String()); !strings.HasSuffix(got, tc.warn) || (tc.warn == "") != (got == "") {
			t.Errorf("%s: logged %q, want %q", tc.line, got, tc.warn)
		}
	}
}
