package boot

import (
	"strings"
	"testing"
)

// TestReparse: the generation phase takes the config phase's parse when
// the boot config file's bytes are unchanged, with the absolute path the
// generation records, and parses the bytes it read when they changed
// (a file replaced between the phases), refusing them when invalid.
func TestReparse(t *testing.T) {
	const v1 = "hostname = \"one\"\n[[container]]\nname = \"a\"\nimage = \"a.img\"\ncommand = [\"true\"]\n"
	v2 := strings.Replace(v1, "one", "two", 1)
	for _, tc := range []struct {
		name, read string
		same       bool   // the config phase's parse is taken
		host       string // the hostname booted
		err        string
	}{
		{name: "unchanged", read: v1, same: true, host: "one"},
		{name: "replaced", read: v2, host: "two"},
		{name: "replaced, invalid", read: v1 + "bogus = 1\n", err: "bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parsed, err := ParseConfig("berth.toml", []byte(v1))
			if err != nil {
				t.Fatal(err)
			}
			got, err := reparse(parsed, []byte(v1), "/etc/berth.toml", []byte(tc.read))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == parsed) != tc.same {
				t.Errorf("took the config phase's parse: %v, want %v", got == parsed, tc.same)
			}
			if got.Hostname != tc.host || got.path != "/etc/berth.toml" {
				t.Errorf("hostname %q from %q, want %q from /etc/berth.toml", got.Hostname, got.path, tc.host)
			}
		})
	}
}
