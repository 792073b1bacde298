package image

import (
	"fmt"
	"sync"
	"sync/atomic"

	"berth/mmapfs"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// frameReader decodes the data frames of a berth image in parallel, each
// with DecodeAll straight from the mapping (or the window of it that holds
// the frame), and hands them out in order on order. Memory is bounded:
// frames are decoded into a fixed set of buffers (about 24 MiB, at least
// three of the biggest frame), a frame waits for a free buffer, and a buffer
// is recycled when its frame's last reference is dropped. Buffers of big
// frames are mapped outside the Go heap, so they do not raise the garbage
// collector's goal, and the mapping's pages of a frame are released once it
// is decoded: the process's resident size does not grow with the image.
type frameReader struct {
	m     *mmapfs.Mapping
	table *mmapfs.SeekTable
	dec   *zstd.Decoder

	order chan *frameBuf // frames in stream order, as they are queued
	stop  chan struct{}  // closed by close
	wg    sync.WaitGroup // the dispatcher and the workers
	once  sync.Once

	mu     sync.Mutex
	cond   *sync.Cond
	bufCap int      // capacity of every buffer: the biggest frame
	nbufs  int      // buffers that may exist
	all    [][]byte // buffers made
	mapped [][]byte // those of them mapped, unmapped by close
	free   [][]byte // buffers not holding a frame
}

// frameBuf is one decoded frame, valid once ready is closed, shared by the
// stream and the writers that hold slices of it.
type frameBuf struct {
	index int
	mem   []byte // the reader's buffer
	buf   []byte // the decoded frame, in mem
	err   error
	ready chan struct{}
	refs  atomic.Int32
	r     *frameReader
}

// ref takes one more reference.
func (f *frameBuf) ref() { f.refs.Add(1) }

// unref drops a reference; the last one recycles the buffer.
func (f *frameBuf) unref() {
	if f.refs.Add(-1) == 0 {
		f.r.recycle(f)
	}
}

// frameBuffers is how many decoded frames an unpack may hold: about 24 MiB,
// and always three (the stream may hold two while the next decodes).
func frameBuffers(maxFrame int64) int { return int(max(3, (24<<20)/max(maxFrame, 1))) }

// newFrameReader starts decoding table's frames from m on workers
// goroutines.
func newFrameReader(m *mmapfs.Mapping, table *mmapfs.SeekTable, lim Limits, workers int) (*frameReader, error) {
	dec, err := mmapfs.NewDecoder(lim.MaxFrameBytes, lim.MaxWindow, workers)
	if err != nil {
		return nil, err
	}
	r := &frameReader{
		m:      m,
		table:  table,
		dec:    dec,
		order:  make(chan *frameBuf, 64),
		stop:   make(chan struct{}),
		bufCap: int(max(table.MaxFrame(), 1)),
		nbufs:  frameBuffers(table.MaxFrame()),
	}
	r.cond = sync.NewCond(&r.mu)
	jobs := make(chan *frameBuf, 64)
	r.wg.Add(1 + workers)
	go r.dispatch(jobs)
	for range workers {
		go r.work(jobs)
	}
	return r, nil
}

// dispatch queues every frame, in order, once the budget allows.
func (r *frameReader) dispatch(jobs chan<- *frameBuf) {
	defer r.wg.Done()
	defer close(jobs)
	defer close(r.order)
	for i := range r.table.Frames {
		buf, ok := r.acquire()
		if !ok {
			return
		}
		f := &frameBuf{index: i, mem: buf, ready: make(chan struct{}), r: r}
		f.refs.Store(1) // the stream's
		select {
		case r.order <- f:
		case <-r.stop:
			return
		}
		jobs <- f
	}
}

// acquire waits for a free buffer, making one while fewer than nbufs
// exist; ok is false once the reader is closed.
func (r *frameReader) acquire() ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.free) == 0 && len(r.all) >= r.nbufs {
		select {
		case <-r.stop:
			return nil, false
		default:
		}
		r.cond.Wait()
	}
	if k := len(r.free); k > 0 {
		buf := r.free[k-1]
		r.free = r.free[:k-1]
		return buf, true
	}
	var buf []byte
	if r.bufCap >= mapBufferMin {
		buf, _ = unix.Mmap(-1, 0, r.bufCap, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	}
	if buf == nil {
		buf = make([]byte, r.bufCap) // small, or the mapping failed: on the heap
	} else {
		r.mapped = append(r.mapped, buf)
	}
	r.all = append(r.all, buf)
	return buf[:0], true
}

// mapBufferMin is the smallest frame buffer mapped outside the heap: below
// it, mapping and unmapping (a TLB shootdown on every thread) costs more
// than the garbage collector's share.
const mapBufferMin = 1 << 20

// recycle returns a frame's buffer.
func (r *frameReader) recycle(f *frameBuf) {
	r.mu.Lock()
	r.free = append(r.free, f.mem[:0])
	f.buf, f.mem = nil, nil
	r.mu.Unlock()
	r.cond.Signal()
}

// work decodes queued frames. A fault on the mapping (the file shrank)
// becomes the frame's error.
func (r *frameReader) work(jobs <-chan *frameBuf) {
	defer r.wg.Done()
	for f := range jobs {
		f.buf, f.err = mmapfs.DecodeFrame(r.dec, r.m, r.table, f.index, f.mem)
		if f.err != nil {
			f.err = fmt.Errorf("zstd frame %d at image offset %d: %w", f.index, r.table.Offsets[f.index], f.err)
		}
		r.m.Release(r.table.Offsets[f.index], int64(r.table.Frames[f.index].CSize))
		close(f.ready)
	}
}

// close stops the decoding, waits for the workers, so the mapping may be
// unmapped afterwards, and unmaps the buffers: no frame may be used after.
func (r *frameReader) close() {
	r.once.Do(func() {
		r.mu.Lock() // so no acquire is between its check and its Wait
		close(r.stop)
		r.mu.Unlock()
		r.cond.Broadcast()
		for f := range r.order { // let the dispatcher finish
			<-f.ready
		}
		r.wg.Wait()
		r.dec.Close()
		for _, b := range r.mapped {
			_ = unix.Munmap(b)
		}
		r.all, r.free, r.mapped = nil, nil, nil
	})
}
