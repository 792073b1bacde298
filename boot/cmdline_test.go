package boot

import (
	"io"
	"reflect"
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

// TestPanicAction: berth.panic's action and delay, at the delay's bound
// and past it (a number that would overflow a Duration waits a day, not
// no time at all).
func TestPanicAction(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		line   string
		action Action
		delay  time.Duration
	}{
		{"berth.panic=poweroff", PowerOff, 0},
		{"berth.panic=halt:5", Halt, 5 * time.Second},
		{"berth.panic=reboot:0", Reboot, 0},
		{"berth.panic=reboot:86400", Reboot, day},
		{"berth.panic=reboot:86401", Reboot, day},
		{"berth.panic=reboot:99999999999999999", Reboot, day},
		{"berth.panic=reboot:-1", Reboot, 10 * time.Second},
		{"berth.panic=reboot:soon", Reboot, 10 * time.Second},
	} {
		b := &booter{log: NewLogger(io.Discard), panicAction: Reboot, panicDelay: 10 * time.Second}
		b.applyCmdline("quiet " + tc.line)
		if b.panicAction != tc.action || b.panicDelay != tc.delay {
			t.Errorf("%s: %v after %v, want %v after %v", tc.line, b.panicAction, b.panicDelay, tc.action, tc.delay)
		}
	}
}
