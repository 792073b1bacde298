package image

import (
	"archive/tar"
	"fmt"
)

// Files are written on several goroutines (see crew). The unpacker keeps
// every ordering that matters on its own goroutine: it creates directories
// itself before handing out anything inside them, hands out only entries
// whose path no earlier entry of the image named and that do not lie under
// one it saw as a non-directory, and waits for the writers (barrier)
// before a hardlink, a repeated path, or emptying its directory cache.
// What the writers then do in any order cannot interact.

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

// batcher gathers the unpacker's jobs into batches of whole files for the
// crew.
type batcher struct {
	c     *crew
	batch []*writeJob
	bytes int64
}

// add queues a job, handing the batch over once it is full or a helper
// waits for work.
func (b *batcher) add(j *writeJob) {
	b.batch = append(b.batch, j)
	b.bytes += j.hdr.Size
	if len(b.batch) >= batchEntries || b.bytes >= batchBytes || b.c.hungry() {
		b.flush()
	}
}

// flush hands the jobs queued so far to the crew.
func (b *batcher) flush() {
	if len(b.batch) == 0 {
		return
	}
	b.c.submit(b.batch)
	b.batch, b.bytes = make([]*writeJob, 0, batchEntries), 0
}

// barrier waits for every job handed out and returns the first error.
func (b *batcher) barrier() error {
	b.flush()
	return b.c.barrier()
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
