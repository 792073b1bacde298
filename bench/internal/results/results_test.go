package results

import (
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
)

// TestWriteMerges writes two benchmarks' figures into one file, then the
// first benchmark's again: its figures and run are replaced, the
// other's kept.
func TestWriteMerges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results", "run.json")
	boot := New("boot")
	boot.Add("amd64 / berth start -> first output", 812, "ms")
	boot.Add("amd64 / berth start -> first output", 790, "ms") // replaces
	start := New("start")
	start.Add("berth / median", 4.2, "ms")
	for _, s := range []*Set{boot, start} {
		if err := s.Write(path); err != nil {
			t.Fatal(err)
		}
	}
	again := New("boot")
	again.Add("arm64 / berth start -> first output", 900, "ms")
	if err := again.Write(path); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Figure{{"start", "berth / median", 4.2, "ms"}, {"boot", "arm64 / berth start -> first output", 900, "ms"}}
	if !reflect.DeepEqual(f.Figures, want) {
		t.Errorf("figures %+v, want %+v", f.Figures, want)
	}
	var benches []string
	for _, r := range f.Runs {
		benches = append(benches, r.Bench)
	}
	if !reflect.DeepEqual(benches, []string{"start", "boot"}) || f.Version != Version || f.Host.CPUs == 0 {
		t.Errorf("runs %v, version %d, host %+v", benches, f.Version, f.Host)
	}
}

// TestPrintedSave keeps what is printed after -json and writes its
// figures.
func TestPrintedSave(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.json")
	p := &Printed{bench: "unpack"}
	if err := p.start(path); err != nil {
		t.Fatal(err)
	}
	fmt.Println("bench unpack: 5 runs per tool")
	p.Save()
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Figure{{"unpack", "bench unpack / runs per tool", 5, ""}}; !reflect.DeepEqual(f.Figures, want) {
		t.Errorf("figures %+v, want %+v", f.Figures, want)
	}
}
