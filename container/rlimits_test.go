package container

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestParseRlimit: every resource by name, in order, each once; a limit
// as N, SOFT:HARD and unlimited; an unknown name lists the known ones.
func TestParseRlimit(t *testing.T) {
	names := RlimitNames()
	if len(names) != 16 || !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Fatalf("RlimitNames %v: want 16, sorted, each once", names)
	}
	for _, c := range []struct {
		name string
		res  int
	}{{"nofile", unix.RLIMIT_NOFILE}, {"as", unix.RLIMIT_AS}, {"stack", unix.RLIMIT_STACK}} {
		if res, ok := rlimitByName(c.name); !ok || res != c.res {
			t.Errorf("rlimitByName(%q) = %d %v, want %d", c.name, res, ok, c.res)
		}
	}
	for _, c := range []struct {
		name, value string
		want        Rlimit
		err         string
	}{
		{"nofile", "1024", Rlimit{"nofile", 1024, 1024}, ""},
		{"nofile", "1024:4096", Rlimit{"nofile", 1024, 4096}, ""},
		{"core", "0:unlimited", Rlimit{"core", 0, Unlimited}, ""},
		{"NOFILE", "1", Rlimit{}, `unknown rlimit "NOFILE": want one of as, core, cpu,`},
		{"", "1", Rlimit{}, "unknown rlimit"},
		{"nofile", "x", Rlimit{}, "nofile"},
	} {
		got, err := ParseRlimit(c.name, c.value)
		if c.err == "" && (err != nil || got != c.want) || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("ParseRlimit(%q, %q) = %+v, %v; want %+v, %q", c.name, c.value, got, err, c.want, c.err)
		}
	}
}
