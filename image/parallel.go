package image

import (
	"archive/tar"
	"fmt"
	"sync"
	"sync/atomic"
)

// writerPool runs file creations on several goroutines. The unpacker keeps
// every ordering that matters on its own goroutine: it creates directories
// itself before handing out anything inside them, hands out only entries
// whose path no earlier entry of the image named and that do not lie under
// one it saw as a non-directory, and waits for the pool (barrier) before a
// hardlink, a repeated path, or emptying its directory cache. What the
// writers then do in any order cannot interact.
type writerPool struct {
	x        *extractor
	src      string
	jobs     chan []*writeJob // batches: one channel operation per batch, not per file
	batch    []*writeJob
	batchLen int64
	inflight sync.WaitGroup
	workers  sync.WaitGroup
	bytes    atomic.Int64
	failed   atomic.Bool
	errMu    sync.Mutex
	err      error
}

// writeJob is one entry to create in a directory the unpacker resolved.
type writeJob struct {
	hdr    *tar.Header
	rel    string
	dir    dirRef
	base   string
	chunks [][]byte
	refs   []*frameBuf
	offset int64 // of the header in the tar stream, for errors
}

// Batches are handed over when they hold this many entries or bytes.
const (
	batchEntries = 32
	batchBytes   = 1 << 20
)

// newWriterPool starts n writers.
func newWriterPool(x *extractor, src string, n int) *writerPool {
	p := &writerPool{x: x, src: src, jobs: make(chan []*writeJob, 2*n)}
	p.workers.Add(n)
	for range n {
		go p.run()
	}
	return p
}

// submit queues a job for the writers.
func (p *writerPool) submit(j *writeJob) {
	p.batch = append(p.batch, j)
	p.batchLen += j.hdr.Size
	if len(p.batch) >= batchEntries || p.batchLen >= batchBytes {
		p.flush()
	}
}

// flush hands the queued jobs to the writers.
func (p *writerPool) flush() {
	if len(p.batch) == 0 {
		return
	}
	p.inflight.Add(1)
	p.jobs <- p.batch
	p.batch, p.batchLen = make([]*writeJob, 0, batchEntries), 0
}

// run is one writer.
func (p *writerPool) run() {
	defer p.workers.Done()
	for batch := range p.jobs {
		for _, j := range batch {
			if !p.failed.Load() {
				n, err := p.x.createAt(j.dir, j.base, j.rel, j.hdr, fileData{chunks: j.chunks}, true)
				p.bytes.Add(n)
				if err != nil {
					p.fail(fmt.Errorf("unpack %s: entry %q at offset %d: %w", p.src, j.hdr.Name, j.offset, err))
				}
			}
			for _, f := range j.refs {
				f.unref()
			}
		}
		p.inflight.Done()
	}
}

// fail records the first error.
func (p *writerPool) fail(err error) {
	p.errMu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.errMu.Unlock()
	p.failed.Store(true)
}

// barrier waits for every submitted job and returns the first error.
func (p *writerPool) barrier() error {
	p.flush()
	p.inflight.Wait()
	if !p.failed.Load() {
		return nil
	}
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// close stops the writers after the jobs queued so far.
func (p *writerPool) close() {
	p.flush()
	close(p.jobs)
	p.workers.Wait()
}

// pathSet remembers the paths an unpack has made, to find entries that
// must not run beside others: repeated paths, and paths under a
// non-directory.
type pathSet map[string]bool // path → is a directory

// admit records rel and its parents. It reports whether rel was seen
// before, and refuses a path under an entry that is not a directory.
func (s pathSet) admit(rel string, isDir bool) (repeat bool, err error) {
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		parent := rel[:i]
		dir, ok := s[parent]
		if ok && !dir {
			return false, fmt.Errorf("%s: %w", parent, errThroughSymlink)
		}
		if !ok {
			s[parent] = true
		}
	}
	_, repeat = s[rel]
	s[rel] = isDir
	return repeat, nil
}
