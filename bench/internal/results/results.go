// Package results is the file make bench writes: every figure of one run
// of the benchmarks, as JSON under bench/results/ (git-ignored), for
// bench/compare to set two runs side by side. Each benchmark adds its own
// figures to the file, replacing those it wrote before, so the three
// commands make bench runs share one file. A benchmark records figures
// with a Set, or — bench/start and bench/unpack — has what it prints
// turned into figures (Flag, Parse).
package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Version is the file format's version.
const Version = 1

// File is one results file.
type File struct {
	Version int    `json:"version"`
	Created string `json:"created"` // RFC 3339, when the first benchmark wrote it
	// Commit is `git describe --always --dirty` of the checkout.
	Commit  string   `json:"commit,omitempty"`
	Host    Host     `json:"host"`
	Runs    []Run    `json:"runs"`
	Figures []Figure `json:"figures"`
}

// Host is the machine the benchmarks ran on.
type Host struct {
	Arch   string `json:"arch"`
	CPUs   int    `json:"cpus"`
	Kernel string `json:"kernel,omitempty"`
}

// Run is one benchmark's part of the file: when it wrote its figures,
// with which arguments, and the load average then — other work on a
// shared machine shows there.
type Run struct {
	Bench   string   `json:"bench"`
	Time    string   `json:"time"`
	Args    []string `json:"args"`
	LoadAvg string   `json:"loadavg,omitempty"`
}

// Figure is one number: a median time, a ratio, a size.
type Figure struct {
	Bench string  `json:"bench"` // start, boot, unpack
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"` // ms, s, x, %, KiB, MiB, ...
}

// Set collects one benchmark's figures, in the order they were added.
type Set struct {
	bench string
	figs  []Figure
}

// New starts the figures of the benchmark named bench.
func New(bench string) *Set { return &Set{bench: bench} }

// Add records a figure; a second figure of the same name replaces the
// first.
func (s *Set) Add(name string, value float64, unit string) {
	for i := range s.figs {
		if s.figs[i].Name == name {
			s.figs[i].Value, s.figs[i].Unit = value, unit
			return
		}
	}
	s.figs = append(s.figs, Figure{Bench: s.bench, Name: name, Value: value, Unit: unit})
}

// Write puts the set into the file at path — created if missing, its
// directory too — in place of the benchmark's earlier figures there.
func (s *Set) Write(path string) error {
	f, err := Read(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f = &File{Version: Version, Created: time.Now().UTC().Format(time.RFC3339), Commit: commit(), Host: host()}
	case err != nil:
		return err
	}
	kept := f.Figures[:0]
	for _, fig := range f.Figures {
		if fig.Bench != s.bench {
			kept = append(kept, fig)
		}
	}
	f.Figures = append(kept, s.figs...)
	runs := f.Runs[:0]
	for _, r := range f.Runs {
		if r.Bench != s.bench {
			runs = append(runs, r)
		}
	}
	f.Runs = append(runs, Run{Bench: s.bench, Time: time.Now().UTC().Format(time.RFC3339), Args: os.Args[1:], LoadAvg: loadAvg()})
	return write(path, f)
}

// Read reads a results file.
func Read(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if f.Version != Version {
		return nil, fmt.Errorf("%s: version %d, want %d", path, f.Version, Version)
	}
	return &f, nil
}

// write replaces the file at path atomically.
func write(path string, f *File) error {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".results-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func commit() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// loadAvg is the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func host() Host {
	h := Host{Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	return h
}
