package boot

import (
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The regular expressions the hand-written matchers replaced; the tests
// check they agree on every input tried.
var (
	fstypeRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.]{0,31}$`)
	definedRE = regexp.MustCompile(`^Key '(.*)' (?:has already been defined|was already created)`)
	typeErrRE = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key ("(?:[^"\\]|\\.)*")\): ((?s).*)$`)
	quotedRE  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

// mutations returns n strings made from seeds by replacing, in 0 to 3
// places, a byte with one of alphabet's or cutting the string short.
func mutations(seeds []string, alphabet string, n int) []string {
	r := rand.New(rand.NewPCG(3, 4))
	out := make([]string, 0, n)
	for range n {
		b := []byte(seeds[r.IntN(len(seeds))])
		for range r.IntN(4) {
			if len(b) == 0 {
				break
			}
			switch i := r.IntN(len(b)); r.IntN(3) {
			case 0:
				b = b[:i]
			default:
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		out = append(out, string(b))
	}
	return out
}

// TestValidFSType checks the filesystem types [storage] fstype accepts
// and refuses, as the regular expression it replaced did.
func TestValidFSType(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"ext4", true}, {"vfat", true}, {"fuse.sshfs", true}, {"9p", true}, {"a_b", true},
		{strings.Repeat("a", 32), true}, {strings.Repeat("a", 33), false},
		{"", false}, {"_x", false}, {".x", false}, {"Ext4", false}, {"ext4\n", false}, {"ext 4", false}, {"ext-4", false}, {"é", false},
	}
	for _, tt := range tests {
		if got := validFSType(tt.s); got != tt.want || fstypeRE.MatchString(tt.s) != tt.want {
			t.Errorf("validFSType(%q) = %v, regular expression %v, want %v", tt.s, got, fstypeRE.MatchString(tt.s), tt.want)
		}
	}
	for _, s := range mutations([]string{"ext4", "fuse.sshfs_x", strings.Repeat("z", 32), strings.Repeat("9", 34)}, "aZ0_.-\n ", 20000) {
		if got, want := validFSType(s), fstypeRE.MatchString(s); got != want {
			t.Fatalf("validFSType(%q) = %v, the regular expression %v", s, got, want)
		}
	}
}

// TestDefinedKey checks the key taken out of the TOML library's
// "defined twice" messages, as the regular expression did.
func TestDefinedKey(t *testing.T) {
	tests := []struct {
		msg, key string
		ok       bool
	}{
		{"Key 'a.b' has already been defined.", "a.b", true},
		{"Key 'container' was already created as a hash.", "container", true},
		{"Key 'x' has already been defined' has already been defined", "x' has already been defined", true},
		{"Key 'x' was already created' has already been defined", "x' was already created", true},
		{"Key 'a\nb' has already been defined", "", false},
		{"Key 'a' has already been\ndefined", "", false},
		{"key 'a' has already been defined", "", false},
		{"Key 'a' is fine", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if k, ok := definedKey(tt.msg); k != tt.key || ok != tt.ok {
			t.Errorf("definedKey(%q) = %q, %v, want %q, %v", tt.msg, k, ok, tt.key, tt.ok)
		}
	}
	seeds := []string{tests[0].msg, tests[1].msg, tests[2].msg, "Key '' has already been defined\nKey 'b' was already created"}
	for _, s := range append(mutations(seeds, "'\n ab", 20000), seeds...) {
		k, ok := definedKey(s)
		m := definedRE.FindStringSubmatch(s)
		if ok != (m != nil) || ok && k != m[1] {
			t.Fatalf("definedKey(%q) = %q, %v; the regular expression found %q", s, k, ok, m)
		}
	}
}

// TestTypeError checks line, key and message taken out of the TOML
// library's decoding errors, as the regular expression did.
func TestTypeError(t *testing.T) {
	tests := []struct {
		err, key, msg string
		line          int
		ok            bool
	}{
		{`toml: line 3 (last key "container.name"): incompatible types: TOML value has type int64; destination has type string`, `"container.name"`, "incompatible types: TOML value has type int64; destination has type string", 3, true},
		{`toml: (last key "a\"b"): bad` + "\nsecond line", `"a\"b"`, "bad\nsecond line", 0, true},
		{`toml: (last key "a\\"): x`, `"a\\"`, "x", 0, true},
		{`toml: line (last key "a"): x`, "", "", 0, false},
		{`toml: line 3(last key "a"): x`, "", "", 0, false},
		{`toml: (last key "a): x`, "", "", 0, false},
		{`toml: (last key "a\` + "\n" + `"): x`, "", "", 0, false},
		{`toml: (last key "a") x`, "", "", 0, false},
		{`toml: (last key a): x`, "", "", 0, false},
		{`oops`, "", "", 0, false},
	}
	for _, tt := range tests {
		line, key, msg, ok := typeError(tt.err)
		if line != tt.line || key != tt.key || msg != tt.msg || ok != tt.ok {
			t.Errorf("typeError(%q) = %d, %q, %q, %v, want %d, %q, %q, %v", tt.err, line, key, msg, ok, tt.line, tt.key, tt.msg, tt.ok)
		}
	}
	var seeds []string
	for _, tt := range tests {
		seeds = append(seeds, tt.err)
	}
	for _, s := range append(mutations(seeds, "\"\\\n: ()9l", 30000), seeds...) {
		line, key, msg, ok := typeError(s)
		m := typeErrRE.FindStringSubmatch(s)
		if ok != (m != nil) {
			t.Fatalf("typeError(%q) matched %v; the regular expression found %q", s, ok, m)
		}
		if ok {
			reLine, _ := strconv.Atoi(m[1])
			if line != reLine || key != m[2] || msg != m[3] {
				t.Fatalf("typeError(%q) = %d, %q, %q; the regular expression found %q", s, line, key, msg, m)
			}
		}
	}
}

// TestCutQuoted checks that long quoted strings in a message are cut
// and the rest is kept, as with the regular expression's replacement.
func TestCutQuoted(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct{ in, want string }{
		{`bad value "` + long + `" here`, `bad value "` + long[:64] + `"…(100 bytes) here`},
		{`two "` + long + `" and "short" and "\"` + long + `"`, `two "` + long[:64] + `"…(100 bytes) and "short" and "\"` + long[:63] + `"…(101 bytes)`},
		{`unclosed "` + long, `unclosed "` + long},
		{`newline "a\` + "\n" + ` then "` + long + `"`, `newline "a\` + "\n" + ` then "` + long[:64] + `"…(100 bytes)`},
	}
	for _, tt := range tests {
		if got := cutQuoted(tt.in); got != tt.want {
			t.Errorf("cutQuoted(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	old := func(m string) string {
		if len(m) <= maxQuoted+2 {
			return m
		}
		return quotedRE.ReplaceAllStringFunc(m, func(q string) string {
			if s, err := strconv.Unquote(q); err == nil {
				return quoteValue(s)
			}
			return q
		})
	}
	var seeds []string
	for _, tt := range tests {
		seeds = append(seeds, tt.in)
	}
	for _, s := range append(mutations(seeds, "\"\\\nx\xff", 20000), seeds...) {
		if got, want := cutQuoted(s), old(s); got != want {
			t.Fatalf("cutQuoted(%q) = %q, the regular expression's replacement %q", s, got, want)
		}
	}
}
