package main

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestFuncKey matches the pclntab's file names, which carry a module's
// version, to the coverage list's, which do not.
func TestFuncKey(t *testing.T) {
	for _, c := range []struct{ pcln, cover string }{
		{"github.com/BurntSushi/toml@v1.4.0/decode.go", "github.com/BurntSushi/toml/decode.go"},
		{"golang.org/x/sys@v0.30.0/unix/syscall_linux.go", "golang.org/x/sys/unix/syscall_linux.go"},
		{"berth/boot/boot.go", "berth/boot/boot.go"},
		{"runtime/proc.go", "runtime/proc.go"},
	} {
		if a, b := funcKey(c.pcln, 42), funcKey(c.cover, 42); a != b {
			t.Errorf("funcKey(%q) = %q, funcKey(%q) = %q", c.pcln, a, c.cover, b)
		}
	}
	if got := pkgOfFile("github.com/klauspost/compress@v1.18.0/zstd/decoder.go"); got != "github.com/klauspost/compress/zstd" {
		t.Errorf("pkgOfFile: %q", got)
	}
	if funcKey("berth/boot/boot.go", 1) == funcKey("berth/boot/boot.go", 11) {
		t.Errorf("lines 1 and 11 share a key")
	}
}

// TestCoverLine reads go tool covdata func's lines: a function that ran
// has a share above 0, the total line is not a function.
func TestCoverLine(t *testing.T) {
	for _, c := range []struct {
		line string
		ok   bool
		name string
	}{
		{"berth/boot/boot.go:42:\t\t(*booter).run\t\t85.7%", true, "(*booter).run"},
		{"runtime/proc.go:150:\tmain\t0.0%", true, "main"},
		{"total\t\t\t\t(statements)\t12.3%", false, ""},
	} {
		m := coverLine.FindStringSubmatch(c.line)
		if (m != nil) != c.ok || (m != nil && m[3] != c.name) {
			t.Errorf("%q: %q", c.line, m)
		}
	}
}

// TestInheritClosures gives a closure, at any depth, its enclosing
// function's state, and leaves a function that is no closure alone.
func TestInheritClosures(t *testing.T) {
	funcs := []textFunc{
		{name: "p.F", ran: true},
		{name: "p.F.func1"},
		{name: "p.F.func1.2"},
		{name: "p.F.gowrap3"},
		{name: "p.G"},
		{name: "p.G.func1"},
		{name: "p.H2"},
	}
	inheritClosures(funcs)
	want := []bool{true, true, true, true, false, false, false}
	for i, f := range funcs {
		if f.ran != want[i] {
			t.Errorf("%s: ran %v, want %v", f.name, f.ran, want[i])
		}
	}
}

// TestPresentPages reads this test binary's own mappings: the page
// holding the code of this function, which is running, is present, and
// the function is in the binary's pclntab.
func TestPresentPages(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	present, err := presentPages(os.Getpid(), exe)
	if err != nil {
		t.Fatal(err)
	}
	pc := uint64(reflect.ValueOf(TestPresentPages).Pointer())
	if !present[pc&^4095] {
		t.Errorf("the page of running code at %#x is not present (%d pages present)", pc, len(present))
	}
	funcs, err := readFuncs(exe)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range funcs {
		if pc >= f.start && pc < f.end {
			// The test binary is built without -trimpath: its file names
			// are absolute.
			found = f.name == "berth/bench/mem.TestPresentPages" && strings.HasSuffix(f.pkg, "bench/mem")
			if !found {
				t.Errorf("%#x is in %s (package %s, %s:%d)", pc, f.name, f.pkg, f.file, f.line)
			}
		}
	}
	if !found {
		t.Errorf("TestPresentPages not found in the pclntab")
	}
}

// TestFaultAround probes the test binary itself: each read maps at least
// its own page, with the advice and without.
func TestFaultAround(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(exe); err != nil || fi.Size() < probeReads*probeStride {
		t.Skipf("the test binary is smaller than the probe: %v", err)
	}
	plain, random, err := faultAround(exe)
	if err != nil {
		t.Fatal(err)
	}
	if plain < probeReads*4 || random < probeReads*4 {
		t.Errorf("%d reads mapped %d KiB, with MADV_RANDOM %d KiB", probeReads, plain, random)
	}
	t.Logf("%d reads %d KiB apart: %d KiB mapped, with MADV_RANDOM %d KiB", probeReads, probeStride>>10, plain, random)
}
