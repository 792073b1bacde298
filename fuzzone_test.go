package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzOutputs are what a fake go command prints, one per call.
var fuzzOutputs = map[string]string{
	"pass": "fuzz: elapsed: 10s, execs: 134002 (14598/sec)\nPASS\nok  \tberth/x\t10.1s\n",
	"flake": "fuzz: elapsed: 10s, execs: 134002 (14598/sec), new interesting: 7 (total: 258)\n" +
		"--- FAIL: FuzzX (10.13s)\n    context deadline exceeded\nFAIL\nexit status 1\n",
	"finding": "--- FAIL: FuzzX (0.21s)\n    --- FAIL: FuzzX (0.00s)\n        fuzz_test.go:40: parse: got 3 fields\n" +
		"    Failing input written to testdata/fuzz/FuzzX/1a2b\n    context deadline exceeded\nFAIL\n",
	"panic": "--- FAIL: FuzzX (0.05s)\n    context deadline exceeded\npanic: index out of range [recovered]\nFAIL\n",
	"build": "x.go:3:1: syntax error\nFAIL\tberth/x [build failed]\n",
}

// TestFuzzOne runs .ci/fuzz-one, which make test runs every fuzz target
// through, against a fake go command that prints a scripted sequence of
// outputs: only a failure at the -fuzztime boundary with no finding is
// run a second time, and that second run decides.
func TestFuzzOne(t *testing.T) {
	for _, tc := range []struct {
		name  string
		seq   []string // the fake go's outputs, in call order
		ok    bool
		calls int
	}{
		{"pass", []string{"pass"}, true, 1},
		{"flake then pass", []string{"flake", "pass"}, true, 2},
		{"flake twice", []string{"flake", "flake"}, false, 2},
		{"flake then finding", []string{"flake", "finding"}, false, 2},
		{"finding", []string{"finding", "pass"}, false, 1},
		{"panic", []string{"panic", "pass"}, false, 1},
		{"build failure", []string{"build", "pass"}, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for i, o := range tc.seq {
				f := filepath.Join(dir, "out"+string(rune('0'+i)))
				if err := os.WriteFile(f, []byte(fuzzOutputs[o]), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// The fake go counts its calls in dir/n, prints the next
			// output and fails unless that output passed.
			fake := filepath.Join(dir, "go")
			script := `#!/bin/sh
d=` + dir + `
n=$(cat $d/n 2>/dev/null || echo 0)
echo $((n+1)) >$d/n
echo "args: $*"
cat $d/out$n
grep -q '^PASS$' $d/out$n
`
			if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", ".ci/fuzz-one", "./x/", "FuzzX", "10s", "1s")
			cmd.Env = append(os.Environ(), "GO="+fake)
			out, err := cmd.CombinedOutput()
			if ok := err == nil; ok != tc.ok {
				t.Errorf("passed = %v, want %v; output:\n%s", ok, tc.ok, out)
			}
			n, _ := os.ReadFile(filepath.Join(dir, "n"))
			if got := strings.TrimSpace(string(n)); got != string(rune('0'+tc.calls)) {
				t.Errorf("go ran %s times, want %d; output:\n%s", got, tc.calls, out)
			}
			if !strings.Contains(string(out), "args: test ./x/ -run ^$ -fuzz ^FuzzX$ -fuzztime 10s -fuzzminimizetime 1s") {
				t.Errorf("go was not run with the target's arguments; output:\n%s", out)
			}
		})
	}
}
