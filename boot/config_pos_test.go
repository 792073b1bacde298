package boot

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// posConfig has every way to write a key, with strings, comments and
// multi-line values that could fool a scanner.
const posConfig = `# berth.toml [[not.a.header]]
hostname = "gw" # a comment with "quotes" and [brackets]

[[container]]
name = "web"
image = ""
command = [
  "/bin/sh", # ] a bracket in a comment
  "-c", """
[[container]]
name = "not a key"
""",
]
env = ['A=[', "B=\"]"]
limits.memory = "1M"
[container.rlimits]
"a.b" = 1
[[container.mount]]
source = "/a"
target = '''/a
'''
[[container.mount]]
target = "/b"

[[container]]
image = "db.tar.zst"
mount = [{ source = "/c", target = "/c" },
  { target = "/d",
    source = "/d" }]
limits = { memory = "2M", pids = 4 }
[container.rlimits]
nofile = 5
`

// TestConfigKeyPositions checks the line found for indexed keys: present keys
// at their own line (empty ones too), missing ones at their table's,
// arrays of tables nested in arrays of tables, inline arrays of tables.
func TestConfigKeyPositions(t *testing.T) {
	pos := newKeyPositions(scanConfig(posConfig))
	tests := []struct {
		key  string
		line int
	}{
		{"hostname", 2},
		{"container#0", 4},
		{"container#0.name", 5},
		{"container#0.image", 6},   // present but empty
		{"container#0.command", 7}, // multi-line array, strings and comments with brackets
		{"container#0.env", 14},
		{"container#0.limits.memory", 15},
		{"container#0.limits", 15},
		{`container#0.rlimits."a.b"`, 17},
		{"container#0.mount#0", 18},
		{"container#0.mount#0.source", 19},
		{"container#0.mount#0.target", 20},
		{"container#0.mount#1.target", 23},
		{"container#0.mount#1.source", 22}, // missing: its [[container.mount]]
		{"container#0.mount", 18},          // the first [[container.mount]]
		{"container#1", 25},
		{"container#1.name", 25}, // missing: its [[container]]
		{"container#1.image", 26},
		{"container#1.mount#0.target", 27},
		{"container#1.mount#1", 28},
		{"container#1.mount#1.target", 28},
		{"container#1.mount#1.source", 29},
		{"container#1.limits.pids", 30},
		{"container#1.rlimits.nofile", 32},
		{"board.watchdog", 0},
	}
	for _, tc := range tests {
		if got := pos.line(tc.key); got != tc.line {
			t.Errorf("line(%q) = %d, want %d", tc.key, got, tc.line)
		}
	}
}

func TestConfigPlainKey(t *testing.T) {
	for in, want := range map[string]string{
		"container#1.mount#0.source":        "container.mount.source",
		"container#12":                      "container",
		"a#0#1.b":                           "a.b",
		`container#0.rlimits."a#1.b"`:       `container.rlimits."a#1.b"`,
		`container#0."q\"#2".x#3`:           `container."q\"#2".x`,
		"hostname":                          "hostname",
		`"container"#0.limits."mem.ory"#10`: `"container".limits."mem.ory"`,
	} {
		if got := plainKey(in); got != want {
			t.Errorf("plainKey(%q) = %q, want %q", in, got, want)
		}
		if !samePlain(in, want) {
			t.Errorf("samePlain(%q, %q) = false", in, want)
		}
	}
	if samePlain("container#0.name", "container.image") || samePlain("a#1", "a#1") {
		t.Error("samePlain matches different keys")
	}
}

func TestConfigQuoteValue(t *testing.T) {
	long := strings.Repeat("a", 512<<10)
	tests := []struct{ in, want string }{
		{"web", `"web"`},
		{"a\"b\n", `"a\"b\n"`},
		{strings.Repeat("x", 64), `"` + strings.Repeat("x", 64) + `"`},
		{strings.Repeat("x", 65), `"` + strings.Repeat("x", 64) + `"…(65 bytes)`},
		{long, `"` + strings.Repeat("a", 64) + `"…(524288 bytes)`},
		// A multi-byte character is not split.
		{strings.Repeat("x", 63) + "é" + "yz", `"` + strings.Repeat("x", 63) + `"…(67 bytes)`},
	}
	for _, tc := range tests {
		if got := quoteValue(tc.in); got != tc.want {
			t.Errorf("quoteValue(%.80q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := quoteValue(strings.Repeat("\xff", 100)); !utf8.ValidString(got) || len(got) > 64*4+20 {
		t.Errorf("quoteValue of invalid UTF-8: %q", got)
	}
}

// TestParseConfigCutsLongValues checks that no error echoes a long value
// whole: a 256 KiB hostname is not printed on the console.
func TestParseConfigCutsLongValues(t *testing.T) {
	long := strings.Repeat("a", maxConfigSize-100)
	for _, src := range []string{
		"hostname = \"" + long + "_\"\n",
		oneContainer + "net = \"" + long + "\"\n",
		"hostname = " + long + "\n",
		"x = 1" + strings.Repeat("1", maxConfigSize-100) + "\n",
	} {
		_, err := ParseConfig("f.toml", []byte(src))
		if err == nil {
			t.Errorf("%.40q...: accepted", src)
		} else if len(err.Error()) > 400 {
			t.Errorf("error of %d bytes: %.300s", len(err.Error()), err)
		}
	}
	_, err := ParseConfig("f.toml", []byte("hostname = "+long+"\n"))
	if want := `expected value but found "` + long[:64] + `"…(` + strconv.Itoa(len(long)) + " bytes) instead"; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error %.300q, want it to end with %q", err, want)
	}
}
