package image

import (
	"fmt"
	"reflect"
	"sync/atomic"
	"time"

	"berth/mmapfs"

	"golang.org/x/sys/unix"
)

// Frames are decoded with DecodeAll from copies read out of the image
// file (mmapfs.DecodeFrame; a sealed image's from its checked views of
// the mapping) into a fixed set of buffers: a frame is claimed for
// decoding only when a buffer is free, and a buffer is recycled when its
// frame's last reference is dropped. Buffers of big frames are mapped
// outside the Go heap, so they do not raise the garbage collector's goal,
// and pages of the mapping read are released every releaseBytes of
// decoded image: the process's resident size does not grow with the
// image.

// frameBuf is one decoded frame, valid once ready (set under the crew's
// mutex), shared by the stream and the batches that hold slices of it.
type frameBuf struct {
	index int
	mem   []byte // the buffer; nil until the decoding goroutine makes it
	src   []byte // the compressed frame's copy, while it decodes (copies)
	buf   []byte // the decoded frame, in mem
	err   error
	ready bool
	refs  atomic.Int32
	c     *crew
}

// ref takes one more reference.
func (f *frameBuf) ref() { f.refs.Add(1) }

// unref drops a reference; the last one recycles the buffer.
func (f *frameBuf) unref() {
	if f.refs.Add(-1) == 0 {
		f.c.recycle(f)
	}
}

// bufferPool is the crew's decode buffers, used with its mutex held.
type bufferPool struct {
	capacity int      // of every buffer: the biggest frame
	max      int      // buffers that may exist
	made     int      // buffers made or being made
	free     [][]byte // buffers not holding a frame
	mapped   [][]byte // mappings holding buffers outside the heap, unmapped by close
	copies   [][]byte // buffers for compressed frames not being decoded
}

// frameBuffers is how many decoded frames an unpack of n goroutines may
// hold: as many as fit in 12 MiB, or two more than there are goroutines
// if that is more (within 24 MiB), and at least three (the stream may
// hold two while the next decodes). Few is deliberate: every page of a
// buffer is fresh memory, whose first touch can cost more than decoding
// into it (about 5 ms per MiB on a VM whose host backs guest memory
// lazily). On two cores that is four buffers of the default 4 MiB frames
// (six of 2 MiB ones: with four of those, the goroutines waited for each
// other about twice as often).
func frameBuffers(maxFrame int64, n int) int {
	per := max(maxFrame, 1)
	return max(3, min(n+2, int((24<<20)/per)), int((12<<20)/per))
}

// copyLimit is the size of the buffers frames are copied into to be
// decoded (0: none, the mapping cannot copy): the table's largest frame,
// if zstd's bound for the largest decoded frame allows it (input plus
// 1/256, as ZSTD_compressBound, and a header's and checksum's room). A
// bigger frame, which no encoder writes, is decoded from the mapping,
// without a buffer of its size.
func copyLimit(m *mmapfs.Mapping, t *mmapfs.SeekTable) int64 {
	if !m.Copies() {
		return 0
	}
	d := t.MaxFrame()
	return min(t.MaxCSize(), d+d>>8+1024)
}

// mapBufferMin is the smallest frame buffer mapped outside the heap: below
// it, mapping and unmapping (a TLB shootdown on every thread) costs more
// than the garbage collector's share.
const mapBufferMin = 1 << 20

func (p *bufferPool) init(maxFrame int64, goroutines int) {
	p.capacity, p.max = int(max(maxFrame, 1)), frameBuffers(maxFrame, goroutines)
}

// available reports whether a frame can be claimed now.
func (p *bufferPool) available() bool { return len(p.free) > 0 || p.made < p.max }

// get returns a free buffer, or nil when a new one is to be made (make).
func (p *bufferPool) get() []byte {
	if k := len(p.free); k > 0 {
		b := p.free[k-1]
		p.free = p.free[:k-1]
		return b
	}
	p.made++
	return nil
}

// hugePage is the size of a transparent huge page with 4 KiB pages
// (x86-64, arm64, arm with LPAE).
const hugePage = 2 << 20

// make makes a buffer, without the crew's mutex. A big one is mapped
// outside the heap, starting on a huge page boundary and advised to use
// huge pages: first touching it then takes one fault per 2 MiB instead of
// 512, and decoding into it misses the TLB less (together about a sixth
// of the unpack's CPU time on minbase). Its mapping, returned as span, is
// a huge page longer than the buffer, the slack left untouched.
func (p *bufferPool) make() (buf, span []byte) { return makeBuffer(p.capacity) }

// makeBuffer makes an empty buffer of the given capacity (see make); span
// is its mapping, nil for one on the heap.
func makeBuffer(capacity int) (buf, span []byte) {
	if capacity >= mapBufferMin {
		m, err := unix.Mmap(-1, 0, capacity+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err == nil {
			addr := reflect.ValueOf(m).Pointer()
			off := int((hugePage - addr%hugePage) % hugePage)
			buf = m[off : off+capacity : off+capacity]
			_ = unix.Madvise(buf, unix.MADV_HUGEPAGE) // a hint: kernels without THP refuse it
			return buf[:0], m
		}
	}
	return make([]byte, 0, capacity), nil // small, or the mapping failed: on the heap
}

// unmap unmaps the mapped buffers.
func (p *bufferPool) unmap() {
	for _, m := range p.mapped {
		_ = unix.Munmap(m)
	}
	p.free, p.mapped, p.copies = nil, nil, nil
}

// claim takes the next frame for decoding, with the crew's mutex held.
func (c *crew) claim() *frameBuf {
	f := &frameBuf{index: c.next, mem: c.bufs.get(), c: c}
	if k := len(c.bufs.copies); k > 0 {
		f.src, c.bufs.copies = c.bufs.copies[k-1], c.bufs.copies[:k-1]
	}
	f.refs.Store(1) // the stream's
	c.inflight[c.next] = f
	c.next++
	return f
}

// decode decodes a claimed frame, from a copy of it where copyLimit allows
// (mmapfs.DecodeFrame): the copy's buffer, one per goroutine decoding at
// a time, is kept for the next frame. A fault on the mapping, or a short
// read (the file shrank), becomes the frame's error.
func (c *crew) decode(f *frameBuf) {
	start := time.Now()
	var span []byte
	if f.mem == nil {
		f.mem, span = c.bufs.make()
	}
	var srcSpan []byte
	if f.src == nil && c.copyMax > 0 {
		f.src, srcSpan = makeBuffer(int(c.copyMax))
	}
	f.err = caught(func() (err error) {
		if crewHook != nil {
			crewHook(f.index)
		}
		f.buf, err = mmapfs.DecodeFrame(c.dec, c.m, c.table, f.index, f.mem, f.src)
		return err
	})
	if f.err != nil {
		f.err = fmt.Errorf("zstd frame %d at image offset %d: %w", f.index, c.table.Offsets[f.index], f.err)
	}
	took := time.Since(start)
	c.mu.Lock()
	for _, m := range [][]byte{span, srcSpan} {
		if m != nil {
			c.bufs.mapped = append(c.bufs.mapped, m)
		}
	}
	if f.src != nil {
		c.bufs.copies = append(c.bufs.copies, f.src)
		f.src = nil
	}
	f.ready = true
	c.work.Decode += took
	c.work.Frames++
	from, to := c.releasable()
	c.wakeStream()
	c.mu.Unlock()
	if to > from {
		c.m.Release(from, to-from)
	}
}

// releasable advances past the frames decoded in stream order and returns
// the image range to release, once it is releaseBytes long, with mu held.
func (c *crew) releasable() (from, to int64) {
	for c.relNext < c.next {
		if f := c.inflight[c.relNext]; c.relNext >= c.want && (f == nil || !f.ready) {
			break
		}
		c.relNext++
	}
	n := len(c.table.Frames)
	end := c.table.Offsets[n-1] + int64(c.table.Frames[n-1].CSize)
	if c.relNext < n {
		end = c.table.Offsets[c.relNext]
	}
	if end-c.relFrom < releaseBytes && c.relNext < n {
		return 0, 0
	}
	from, c.relFrom = c.relFrom, end
	return from, end
}

// recycle returns a frame's buffer.
func (c *crew) recycle(f *frameBuf) {
	c.mu.Lock()
	c.bufs.free = append(c.bufs.free, f.mem[:0])
	f.buf, f.mem = nil, nil
	c.wakeHelper()
	c.wakeStream()
	c.mu.Unlock()
}
