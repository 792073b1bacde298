package results

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
)

// Printed keeps what a benchmark prints on its standard output, for the
// -json flag of a benchmark that does not record its figures one by one:
// each number it printed becomes a figure (Parse).
type Printed struct {
	bench, path string
	stdout, w   *os.File
	buf         bytes.Buffer
	done        chan struct{}
}

// Flag registers -json FILE on the command line's flags for the benchmark
// named bench. Given -json, what the benchmark prints from then on still
// reaches the terminal and is also kept for Save.
func Flag(bench string) *Printed {
	p := &Printed{bench: bench}
	flag.Func("json", "also write every figure printed to `FILE` (JSON, for go run ./bench/compare; make bench names it)", p.start)
	return p
}

// start begins keeping what is printed, teeing os.Stdout through a pipe.
func (p *Printed) start(path string) error {
	if p.path != "" {
		return fmt.Errorf("-json given twice")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	p.path, p.stdout, p.w, p.done = path, os.Stdout, w, make(chan struct{})
	os.Stdout = w
	go func() {
		defer close(p.done)
		io.Copy(io.MultiWriter(p.stdout, &p.buf), r)
		r.Close()
	}()
	return nil
}

// Save writes the figures of what was printed to the -json FILE, if one
// was given. Call it last: standard output is the terminal again after
// it. It ends the program with status 1 when the file cannot be written.
func (p *Printed) Save() {
	if p.path == "" {
		return
	}
	os.Stdout = p.stdout
	p.w.Close()
	<-p.done
	s := New(p.bench)
	for _, f := range Parse(p.buf.String()) {
		s.Add(f.Name, f.Value, f.Unit)
	}
	if err := s.Write(p.path); err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: -json: %v\n", p.bench, err)
		os.Exit(1)
	}
}
