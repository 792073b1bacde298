package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestBuiltRuntimeSettings checks the binary make built (make test builds
// it first) for the runtime settings the Makefile gives it beside
// main.go's //go:debug lines: memprofilerate=0, so the runtime does not
// record a heap profile sample of its first allocation. A binary without
// it maps the profile's bucket table (179,999 pointers: 1,439,992 bytes
// on a 64-bit machine) before berth's code runs; strace shows that
// mapping.
func TestBuiltRuntimeSettings(t *testing.T) {
	bin, err := filepath.Abs(filepath.Join("out", "berth-linux-"+runtime.GOARCH))
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if os.IsNotExist(err) {
		t.Skipf("%s is not built (make test builds it)", bin)
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "list", "-f", "{{.DefaultGODEBUG}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	want := strings.TrimSpace(string(out)) + ",memprofilerate=0"
	if !bytes.Contains(data, []byte(want)) {
		t.Errorf("%s does not hold the runtime settings %q (Makefile, GODEBUG_DEFAULT)", bin, want)
	}
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("no strace to watch the runtime's mappings")
	}
	trace, err := exec.Command("strace", "-f", "-e", "trace=mmap", bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("strace %s version: %v\n%s", bin, err, trace)
	}
	if !bytes.Contains(trace, []byte("mmap(")) {
		t.Fatalf("strace shows no mmap at all:\n%s", trace)
	}
	const buckets = 179999 // runtime/mprof.go, buckHashSize
	if table := fmt.Sprintf("mmap(NULL, %d,", buckets*strconv.IntSize/8); bytes.Contains(trace, []byte(table)) {
		t.Errorf("%s maps the heap profile's bucket table at start:\n%s", bin, trace)
	}
}
