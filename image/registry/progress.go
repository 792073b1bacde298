package registry

import (
	"fmt"
	"io"
	"time"
)

// progress draws one line of download (or upload) progress, redrawn in
// place at most five times a second.
type progress struct {
	w     io.Writer
	verb  string // "downloading", "uploading"
	total int64
	n     int64
	last  time.Time
}

// newProgress counts towards the layers' sizes; w nil draws nothing.
func newProgress(w io.Writer, verb string, layers []descriptor) *progress {
	p := &progress{w: w, verb: verb}
	for _, l := range layers {
		p.total += l.Size
	}
	return p
}

// tick adds n bytes (negative when a download starts again).
func (p *progress) tick(n int64) {
	p.n += n
	if p.w == nil || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw()
}

func (p *progress) draw() {
	fmt.Fprintf(p.w, "\r%s %.1f / %.1f MiB", p.verb, float64(p.n)/(1<<20), float64(p.total)/(1<<20))
}

// done draws the final count and ends the line.
func (p *progress) done() {
	if p.w != nil {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

// progressReader ticks p with what is read through it.
type progressReader struct {
	r io.Reader
	p *progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.tick(int64(n))
	return n, err
}
