package boot

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The corpus of broken configs: testdata/configs/*.toml, each opening with
// comment lines that say what `berth check` must answer:
//
//	# want: LINE KEY [part of the message]   (one per expected error)
//	# want: ok                                (the config is valid)
//
// KEY "-" is an error with no key (garbage outside any table). Every error
// reported must be wanted, and every want reported. Adding a case is
// adding a file.

type corpusWant struct {
	line     int
	key, msg string
}

type corpusCase struct {
	name, path string
	wants      []corpusWant
	ok         bool // the config is valid
	firstOnly  bool // the only want is the first error
}

// loadCorpus reads the cases under dir.
func loadCorpus(t *testing.T, dir string) []corpusCase {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.toml"))
	var cases []corpusCase
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c := corpusCase{name: strings.TrimPrefix(path, dir+"/"), path: path}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() && strings.HasPrefix(sc.Text(), "#") {
			line := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "#"))
			switch {
			case line == "want: ok":
				c.ok = true
			case strings.HasPrefix(line, "want: "):
				f := strings.SplitN(strings.TrimPrefix(line, "want: "), " ", 3)
				n, err := strconv.Atoi(f[0])
				if err != nil || len(f) < 2 {
					t.Fatalf("%s: bad want line %q", path, line)
				}
				w := corpusWant{line: n, key: f[1]}
				if len(f) == 3 {
					w.msg = f[2]
				}
				c.wants = append(c.wants, w)
			}
		}
		if !c.ok && len(c.wants) == 0 {
			t.Fatalf("%s: no '# want:' line", path)
		}
		cases = append(cases, c)
	}
	return cases
}

// bigCases writes the C1 shapes, at the size cap, into dir as corpus
// cases; with errors, the first is the one wanted.
func bigCases(t *testing.T, dir string) []corpusCase {
	var cases []corpusCase
	for _, sh := range configShapes {
		path := filepath.Join(dir, strings.ReplaceAll(sh.name, " ", "-")+".toml")
		if err := os.WriteFile(path, []byte(sh.gen(maxConfigSize)), 0o644); err != nil {
			t.Fatal(err)
		}
		c := corpusCase{name: "big/" + filepath.Base(path), path: path, ok: sh.want == "ok", firstOnly: true}
		if !c.ok {
			line, key, _ := strings.Cut(sh.want, " ")
			n, _ := strconv.Atoi(line)
			c.wants = []corpusWant{{line: n, key: key}}
		}
		cases = append(cases, c)
	}
	return cases
}

// checkText is what `berth check` prints on stderr for err.
func checkText(err error) string {
	var b strings.Builder
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			fmt.Fprintln(&b, e)
		}
	} else {
		fmt.Fprintln(&b, err)
	}
	return b.String()
}

// checkCase runs c through LoadConfig, as `berth check` does, and returns
// what is wrong with the answer.
func checkCase(c corpusCase, err error) []string {
	if c.ok {
		if err != nil {
			return []string{fmt.Sprintf("refused, want it accepted:\n%s", checkText(err))}
		}
		return nil
	}
	if err == nil {
		return []string{"accepted, want errors"}
	}
	var problems []string
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	got := map[corpusWant]string{}
	var first corpusWant
	for i, e := range list {
		var ce *ConfigError
		if !errors.As(e, &ce) || ce.File != c.path || ce.Line <= 0 || ce.Msg == "" {
			problems = append(problems, fmt.Sprintf("error %q is not FILE:LINE: KEY: message", e))
			continue
		}
		key := ce.Key
		if key == "" {
			key = "-"
		}
		got[corpusWant{line: ce.Line, key: key}] = ce.Msg
		if i == 0 {
			first = corpusWant{line: ce.Line, key: key}
		}
	}
	if c.firstOnly {
		got = map[corpusWant]string{first: got[first]}
	}
	wanted := map[corpusWant]bool{}
	for _, w := range c.wants {
		k := corpusWant{line: w.line, key: w.key}
		wanted[k] = true
		msg, ok := got[k]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("no error at line %d for %s", w.line, w.key))
		case !strings.Contains(msg, w.msg):
			problems = append(problems, fmt.Sprintf("error at line %d for %s says %q, want %q in it", w.line, w.key, msg, w.msg))
		}
	}
	for k := range got {
		if !wanted[k] {
			problems = append(problems, fmt.Sprintf("unwanted error at line %d for %s: %s", k.line, k.key, got[k]))
		}
	}
	if len(problems) > 0 {
		problems = append(problems, "berth check says:\n"+cutMessage(checkText(err)))
	}
	return problems
}

// TestConfigCorpus checks every corpus case, and the C1 shapes at the size
// cap, through LoadConfig: the errors `berth check` prints, at the lines
// and keys wanted. The time of each is logged.
func TestConfigCorpus(t *testing.T) {
	cases := loadCorpus(t, "testdata/configs")
	if len(cases) < 100 {
		t.Errorf("%d corpus cases, want at least 100", len(cases))
	}
	cases = append(cases, bigCases(t, t.TempDir())...)
	var slowest time.Duration
	var slowestName string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			_, err := LoadConfig(c.path)
			d := time.Since(start)
			if d > slowest {
				slowest, slowestName = d, c.name
			}
			t.Logf("%s", d)
			if problems := checkCase(c, err); len(problems) > 0 {
				t.Errorf("%s", strings.Join(problems, "\n"))
			}
		})
	}
	t.Logf("%d cases; slowest %s: %s", len(cases), slowestName, slowest)
}

// buildBerth builds the berth binary into dir.
func buildBerth(t *testing.T, dir string) string {
	bin := filepath.Join(dir, "berth")
	build := exec.Command("go", "build", "-o", bin, "berth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v\n%s", err, out)
	}
	return bin
}

// TestCheckCorpusBinary runs a handful of corpus cases, big ones included,
// through the real `berth check`: exit status 2, and on stderr exactly the
// errors of the in-process check, one FILE:LINE: KEY: message per line.
func TestCheckCorpusBinary(t *testing.T) {
	var cases []corpusCase
	var bad []corpusCase
	for _, c := range loadCorpus(t, "testdata/configs") {
		if !c.ok {
			bad = append(bad, c)
		}
	}
	for i, c := range bad {
		if i%20 == 0 {
			cases = append(cases, c)
		}
	}
	dir := t.TempDir()
	for i, c := range bigCases(t, dir) {
		if i%12 == 0 && !c.ok {
			cases = append(cases, c)
		}
	}
	bin := buildBerth(t, dir)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, "check", c.path)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			t.Logf("berth check: %s", time.Since(start))
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("berth check %s: %v, want exit status 2; stderr:\n%s", c.path, err, stderr.String())
			}
			_, inProcess := LoadConfig(c.path)
			if stderr.String() != checkText(inProcess) {
				t.Errorf("berth check says:\n%s\nwant:\n%s", stderr.String(), checkText(inProcess))
			}
			for _, line := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
				if !strings.HasPrefix(line, c.path+":") {
					t.Errorf("line %q does not start with FILE:", line)
				}
			}
			if p := checkCase(c, inProcess); len(p) > 0 {
				t.Errorf("%s", strings.Join(p, "\n"))
			}
		})
	}
}
