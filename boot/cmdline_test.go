package boot

import (
	"reflect"
	"testing"
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
