package boot

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// configShape is a pathological config: gen returns one of about n bytes
// (never more). Each shape stresses one path of the parser or of berth's
// own checks.
type configShape struct {
	name string
	gen  func(n int) string
	// want is "ok" when the file is a valid config, else the LINE KEY
	// (as in a corpus file's "# want:") of the first error.
	want string
}

const oneContainer = "[[container]]\nname = \"a\"\nimage = \"i\"\ncommand = [\"/x\"]\n"

// fill repeats unit(i) between head and tail up to n bytes.
func fill(n int, head string, unit func(i int) string, tail string) string {
	var b strings.Builder
	b.WriteString(head)
	for i := 0; ; i++ {
		u := unit(i)
		if b.Len()+len(u)+len(tail) > n {
			break
		}
		b.WriteString(u)
	}
	b.WriteString(tail)
	return b.String()
}

func same(s string) func(int) string { return func(int) string { return s } }

// nested opens and closes k levels of open/close around inner so that
// the whole is at most n bytes.
func nested(n int, head, open, inner, close, tail string) string {
	k := (n - len(head) - len(inner) - len(tail)) / (len(open) + len(close))
	return head + strings.Repeat(open, k) + inner + strings.Repeat(close, k) + tail
}

// deepKey is the want of the shapes nested too deep: "1 a.a.a…" cut.
var deepKey = "1 " + strings.Repeat("a.", 32) + "…"

var configShapes = []configShape{
	{"nested inline tables", func(n int) string { return nested(n, "a = ", "{a = ", "1", "}", "\n") }, deepKey},
	{"nested arrays", func(n int) string { return nested(n, "a = ", "[", "", "]", "\n") }, "1 a"},
	{"nested arrays of inline tables", func(n int) string { return nested(n, "a = ", "[{a = ", "1", "}]", "\n") }, "1 a" + strings.Repeat(".a", 16)},
	{"nested multi-line inline tables", func(n int) string { return nested(n, "a = ", "{\na = ", "1", "\n}", "\n") }, "33 " + deepKey[2:]},
	{"deep dotted key", func(n int) string { return nested(n, "", "a.", "a = 1", "", "\n") }, deepKey},
	{"deep table header", func(n int) string { return nested(n, "[", "a.", "a", "", "]\n") }, deepKey},
	{"deep array of tables header", func(n int) string { return nested(n, "[[", "a.", "a", "", "]]\n") }, deepKey},
	{"long key name", func(n int) string { return nested(n, "", "k", "", "", " = 1\n") }, "1 " + strings.Repeat("k", 64) + "…"},
	{"long quoted key name", func(n int) string { return nested(n, `"`, `\"`, "", "", "\" = 1\n") }, `1 "` + strings.Repeat(`\"`, 31) + `\…`},
	{"keys under a long table name", func(n int) string {
		head := "[" + strings.Repeat(strings.Repeat("t", 28)+".", 3) + strings.Repeat("t", 28) + "]\n"
		return fill(n, head, func(i int) string { return "k" + strconv.Itoa(i) + " = 1\n" }, "")
	}, "1 " + cutKey(strings.Repeat(strings.Repeat("t", 28)+".", 3))},
	{"many unknown keys", func(n int) string {
		return fill(n, "", func(i int) string { return "k" + strconv.Itoa(i) + " = 1\n" }, "")
	}, "1 k0"},
	{"many table headers", func(n int) string {
		return fill(n, "", func(i int) string { return "[t" + strconv.Itoa(i) + "]\n" }, "")
	}, "1 t0"},
	{"many containers", func(n int) string {
		return fill(n, "", func(i int) string {
			return "[[container]]\nname = \"c" + strconv.Itoa(i) + "\"\nimage = \"i\"\ncommand = [\"/x\"]\n"
		}, "")
	}, "ok"},
	{"many empty containers", func(n int) string { return fill(n, "", same("[[container]]\n"), "") }, "1 container.image"},
	{"many containers with one name", func(n int) string { return fill(n, oneContainer, same(oneContainer), "") }, "6 container.name"},
	{"many unknown keys in containers", func(n int) string {
		return fill(n, "", same(oneContainer+"bogus = 1\n"), "")
	}, "5 container.bogus"},
	{"many unknown tables in containers", func(n int) string {
		return fill(n, "", same(oneContainer+"[container.bogus]\nx = 1\n"), "")
	}, "5 container.bogus"},
	{"many mounts", func(n int) string {
		return fill(n, oneContainer, func(i int) string {
			return "[[container.mount]]\ntype = \"tmpfs\"\ntarget = \"/t" + strconv.Itoa(i) + "\"\n"
		}, "")
	}, "ok"},
	{"many mounts in an inline array", func(n int) string {
		return fill(n, oneContainer+"mount = [", func(i int) string {
			return "{type = \"tmpfs\", target = \"/t" + strconv.Itoa(i) + "\"},\n"
		}, "]\n")
	}, "ok"},
	{"many empty inline tables", func(n int) string { return fill(n, "a = [", same("{},"), "]\n") }, "1 a"},
	{"wide inline table", func(n int) string {
		return fill(n, oneContainer+"limits = {", func(i int) string { return "k" + strconv.Itoa(i) + " = 1, " }, "}\n")
	}, "5 container.limits.k0"},
	{"long array of strings", func(n int) string {
		return fill(n, "[[container]]\nname = \"a\"\nimage = \"i\"\ncommand = [", same("\"x\", "), "]\n")
	}, "ok"},
	// 5 bytes a group: at the cap, fewer than the kernel's 65536 groups.
	{"long array of numbers", func(n int) string { return fill(n, oneContainer+"groups = [", same("1000,"), "]\n") }, "ok"},
	{"long array of errors", func(n int) string { return fill(n, oneContainer+"env = [", same("\"X\","), "]\n") }, "5 container.env"},
	{"long array of dependencies", func(n int) string {
		return fill(n, oneContainer+"after = [", same("\"b\","), "]\n")
	}, "5 container.after"},
	{"dependency chain", func(n int) string {
		return fill(n, oneContainer, func(i int) string {
			return "[[container]]\nname = \"c" + strconv.Itoa(i+1) + "\"\nimage = \"i\"\ncommand = [\"/x\"]\nafter = [\"" + prev(i) + "\"]\n"
		}, "")
	}, "ok"},
	{"long string", func(n int) string { return nested(n, "hostname = \"", "a", "", "", "\"\n") }, "1 hostname"},
	{"long escaped string", func(n int) string { return nested(n, "hostname = \"", `\u0041`, "", "", "\"\n") }, "1 hostname"},
	{"long multi-line string", func(n int) string { return nested(n, "hostname = \"\"\"", "a\n", "", "", "\"\"\"\n") }, "1 hostname"},
	{"unterminated multi-line string", func(n int) string { return nested(n, "hostname = '''", "a\n", "", "", "") }, "1 hostname"},
	{"long integer", func(n int) string { return nested(n, "oom = ", "1", "", "", "\n") }, "1 oom"},
	{"long bare word", func(n int) string { return nested(n, "hostname = ", "x", "", "", "\n") }, "1 hostname"},
	{"long landlock list", func(n int) string {
		return fill(n, oneContainer+"[container.landlock]\nread = [", func(i int) string { return "\"/p" + strconv.Itoa(i) + "\"," }, "]\n")
	}, "6 container.landlock.read"},
	{"many apparmor policy files", func(n int) string {
		return fill(n, "[security]\napparmor_policy = [", func(i int) string { return "\"/p" + strconv.Itoa(i) + "\"," }, "]\n")
	}, "2 security.apparmor_policy"},
	{"long apparmor profile name", func(n int) string { return nested(n, oneContainer+"apparmor = \"", "p", "", "", "\"\n") }, "5 container.apparmor"},
	{"many comments", func(n int) string { return fill(n, oneContainer, same("# comment\n"), "") }, "ok"},
	{"many blank lines then an error", func(n int) string { return fill(n, "", same("\n"), "x = \n") }, strconv.Itoa(maxConfigSize-4) + " x"},
}

func prev(i int) string {
	if i == 0 {
		return "a"
	}
	return "c" + strconv.Itoa(i)
}

// parseCost is what parsing one file cost: berth's own work counter (see
// configScan.work, keyPositions.work), allocations, and the time, which
// is only logged.
type parseCost struct {
	err            error
	work           int
	mallocs, bytes uint64
	seconds        float64
}

func measureParse(src string) parseCost {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, work, err := parseConfig("f.toml", []byte(src))
	c := parseCost{err: err, work: work, seconds: time.Since(start).Seconds()}
	runtime.ReadMemStats(&after)
	c.mallocs, c.bytes = after.Mallocs-before.Mallocs, after.TotalAlloc-before.TotalAlloc
	return c
}

// configErrors returns the errors in err, each of which must be a located
// *ConfigError of file.
func configErrors(t *testing.T, file string, err error) []*ConfigError {
	t.Helper()
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	var out []*ConfigError
	for _, e := range list {
		var ce *ConfigError
		if !errors.As(e, &ce) || ce.File != file {
			t.Errorf("error %q is not a *ConfigError of %s", e, file)
			continue
		}
		out = append(out, ce)
	}
	if len(out) > maxErrors {
		t.Errorf("%d errors reported, more than %d", len(out), maxErrors)
	}
	return out
}

// TestConfigShapes checks that berth's work and the allocations grow
// linearly with each pathological shape: doubling the file at most doubles
// them, give or take rounding. (TestConfigCorpus checks the answer to each
// at the size cap.) Times are logged, never asserted.
func TestConfigShapes(t *testing.T) {
	for _, sh := range configShapes {
		t.Run(sh.name, func(t *testing.T) {
			h := measureParse(sh.gen(maxConfigSize / 4))
			c := measureParse(sh.gen(maxConfigSize / 2))
			t.Logf("%d bytes: %.3fs, %d work, %d mallocs, %.1f MB allocated",
				maxConfigSize/2, c.seconds, c.work, c.mallocs, float64(c.bytes)/1e6)
			if (c.err == nil) != (sh.want == "ok") {
				t.Errorf("want %s, got %v", sh.want, cutMessage(fmt.Sprint(c.err)))
			}
			if c.err != nil {
				configErrors(t, "f.toml", c.err)
			}
			for _, r := range []struct {
				what       string
				half, full float64
			}{
				{"berth's work", float64(h.work), float64(c.work)},
				{"mallocs", float64(h.mallocs), float64(c.mallocs)},
				{"bytes allocated", float64(h.bytes), float64(c.bytes)},
			} {
				if r.full > 2.5*r.half+4096 {
					t.Errorf("%s grew from %.0f to %.0f when the file doubled", r.what, r.half, r.full)
				}
			}
		})
	}
}
