package image

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"berth/mmapfs"

	"github.com/klauspost/compress/zstd"
)

// crew unpacks a berth image on a fixed set of goroutines: the unpacking
// goroutine, which alone reads the tar headers, makes the directories and
// decides what may run beside what (berthLoop), and helpers. Between them
// lie two kinds of task, kept in one place under one mutex: decoding the
// next frame, in stream order, into a free buffer, and writing a batch of
// whole files from slices of decoded frames. No task is handed to a
// particular goroutine: whoever is free takes the next one, and a
// goroutine sleeps only when there is none at all. The unpacking goroutine
// takes tasks too whenever it would otherwise wait — for its next frame, a
// free buffer, or the writers (barrier) — so on two cores both threads stay
// busy and the Go scheduler has almost nothing to hand over.
type crew struct {
	m     *mmapfs.Mapping
	table *mmapfs.SeekTable
	dec   *zstd.Decoder
	x     *extractor // nil: the helpers only decode
	src   string

	mu      sync.Mutex
	hwake   sync.Cond    // a helper may find a task
	pwake   sync.Cond    // what the unpacking goroutine waits for may be done
	idle    atomic.Int32 // helpers asleep (changed under mu, read without)
	pAsleep bool
	stop    bool

	bufs     bufferPool
	copyMax  int64             // frames up to this size are decoded from copies (copyLimit)
	inflight map[int]*frameBuf // claimed and not yet pulled by the stream
	next     int               // next frame to claim for decoding
	want     int               // next frame the stream pulls
	relNext  int               // frames before it are decoded
	relFrom  int64             // image bytes before it are released

	queue   [][]*writeJob
	pending int // batches queued or being written
	bytes   atomic.Int64
	failed  atomic.Bool
	err     error // the first write error

	helpers sync.WaitGroup
	work    Work
	own     time.Duration // the unpacking goroutine's time in tasks and asleep
}

// Work breaks down the unpack of a berth image: where its goroutines'
// time went, summed over them, and how often work changed hands. A
// benchmark prints it; nothing depends on it.
type Work struct {
	Goroutines int           // the unpacking goroutine and its helpers
	Decode     time.Duration // decoding frames
	Write      time.Duration // writing batches of whole files
	Serial     time.Duration // the unpacking goroutine's own work: headers, directories, files it writes in order
	Sleep      time.Duration // asleep, no task to take
	Frames     int           // frames decoded
	Batches    int           // batches of whole files handed over
	Sleeps     int           // times a goroutine found no task and slept
}

// Batches of whole files are handed over when they hold this many entries
// or bytes, or at once when a helper has nothing to do.
const (
	batchEntries = 32
	batchBytes   = 1 << 20
)

// releaseBytes is how much of the image is decoded before its pages are
// released from the mapping: one madvise (and TLB shootdown) per 8 MiB,
// not per frame. Frames decoded from copies (copyLimit) map no page of
// it; a sealed image's checked views and a frame too big to copy do.
const releaseBytes = 8 << 20

// errCrewClosed is what a stream reads once the crew is closed.
var errCrewClosed = errors.New("frame reader closed")

// newCrew starts helpers goroutines beside the caller. With x nil they
// only decode (the caller writes every entry itself).
func newCrew(m *mmapfs.Mapping, table *mmapfs.SeekTable, lim Limits, helpers int, x *extractor, src string) (*crew, error) {
	dec, err := mmapfs.NewDecoder(lim.MaxFrameBytes, lim.MaxWindow, helpers+1)
	if err != nil {
		return nil, err
	}
	c := &crew{m: m, table: table, dec: dec, x: x, src: src, inflight: make(map[int]*frameBuf)}
	c.hwake.L, c.pwake.L = &c.mu, &c.mu
	c.bufs.init(table.MaxFrame(), helpers+1)
	c.copyMax = copyLimit(m, table)
	c.work.Goroutines = helpers + 1
	c.helpers.Add(helpers)
	for range helpers {
		go c.help()
	}
	return c, nil
}

// task is one unit of work: a frame to decode or a batch to write.
type task struct {
	frame *frameBuf
	batch []*writeJob
}

// take picks a task for a goroutine, with mu held: the frame the stream
// needs next, if nobody decodes it yet; then a batch; then a later frame.
func (c *crew) take() (task, bool) {
	claimable := c.next < len(c.table.Frames) && c.bufs.available()
	if claimable && c.next <= c.want {
		return task{frame: c.claim()}, true
	}
	if len(c.queue) > 0 {
		b := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		return task{batch: b}, true
	}
	if claimable {
		return task{frame: c.claim()}, true
	}
	return task{}, false
}

// run does a task, without mu held.
func (c *crew) run(t task) {
	if t.frame != nil {
		c.decode(t.frame)
	} else {
		c.write(t.batch)
	}
}

// help is a helper: it takes tasks until the crew is closed.
func (c *crew) help() {
	defer c.helpers.Done()
	c.mu.Lock()
	for !c.stop {
		t, ok := c.take()
		if !ok {
			c.idle.Add(1)
			c.sleep(&c.hwake)
			c.idle.Add(-1)
			continue
		}
		c.mu.Unlock()
		c.run(t)
		c.mu.Lock()
	}
	c.mu.Unlock()
}

// sleep waits on cond, with mu held, and counts it.
func (c *crew) sleep(cond *sync.Cond) {
	start := time.Now()
	cond.Wait()
	c.work.Sleeps++
	c.work.Sleep += time.Since(start)
}

// wakeHelper wakes a sleeping helper, with mu held.
func (c *crew) wakeHelper() {
	if c.idle.Load() > 0 {
		c.hwake.Signal()
	}
}

// wakeStream wakes the unpacking goroutine if it sleeps, with mu held.
func (c *crew) wakeStream() {
	if c.pAsleep {
		c.pwake.Signal()
	}
}

// frame returns decoded frame i for the stream, holding the stream's
// reference. Until it is decoded the unpacking goroutine takes tasks
// itself — decoding it when nobody does yet — and sleeps only when there
// is none.
func (c *crew) frame(i int) (*frameBuf, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want = i
	for {
		if f := c.inflight[i]; f != nil && f.ready {
			delete(c.inflight, i)
			c.want = i + 1
			return f, f.err
		}
		if c.stop {
			return nil, errCrewClosed
		}
		c.runOne()
	}
}

// runOne runs one task on the unpacking goroutine, with mu held (and
// dropped while it runs), or sleeps when there is none.
func (c *crew) runOne() {
	start := time.Now()
	if t, ok := c.take(); ok {
		c.mu.Unlock()
		c.run(t)
		c.mu.Lock()
	} else {
		c.pAsleep = true
		c.sleep(&c.pwake)
		c.pAsleep = false
	}
	c.own += time.Since(start)
}

// submit queues a batch for whoever is free. The unpacking goroutine
// goes on reading headers: it writes batches itself only when it would
// otherwise wait.
func (c *crew) submit(batch []*writeJob) {
	c.mu.Lock()
	c.queue = append(c.queue, batch)
	c.pending++
	c.work.Batches++
	c.wakeHelper()
	c.mu.Unlock()
}

// hungry reports that a helper sleeps for want of a task.
func (c *crew) hungry() bool { return c.idle.Load() > 0 }

// barrier waits until every batch submitted is written, taking tasks
// meanwhile, and returns the first write error.
func (c *crew) barrier() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.pending > 0 {
		c.runOne()
	}
	return c.err
}

// write creates a batch's files, unless an earlier one failed, and drops
// their frames.
func (c *crew) write(batch []*writeJob) {
	start := time.Now()
	for _, j := range batch {
		if !c.failed.Load() {
			var n int64
			err := caught(func() (err error) {
				if crewHook != nil {
					crewHook(-1)
				}
				n, err = c.x.createAt(j.dir, j.base, j.rel, j.hdr, fileData{chunks: j.chunks}, true)
				return err
			})
			c.bytes.Add(n)
			if err != nil {
				c.fail(fmt.Errorf("unpack %s: entry %q at offset %d: %w", c.src, j.hdr.Name, j.offset, err))
			}
		}
		for _, f := range j.refs {
			f.unref()
		}
	}
	took := time.Since(start)
	c.mu.Lock()
	c.pending--
	c.work.Write += took
	c.wakeStream()
	c.mu.Unlock()
}

// crewHook, when set (tests), runs at the start of each frame's decode
// (its index) and each file's write (-1), inside caught.
var crewHook func(frame int)

// caught runs fn and turns a panic in it into an error. The crew's tasks
// run on goroutines whose panic no caller could recover, in a process
// that may be PID 1: a panic there — a defect, not bad input, since
// mmapfs.Guard turns a fault on the image into ErrFault — fails the
// unpack, naming it, instead of ending the process.
func caught(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error (panic: %v)", p)
		}
	}()
	return fn()
}

// fail records the first error.
func (c *crew) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.failed.Store(true)
}

// finish returns the crew's Work, elapsed being the unpacking goroutine's
// time in runBerth; the crew must be closed.
func (c *crew) finish(elapsed time.Duration) Work {
	w := c.work
	w.Serial = max(elapsed-c.own, 0)
	return w
}

// close stops the helpers once their current task is done and unmaps the
// buffers: no frame may be used after. The mapping may be unmapped then.
func (c *crew) close() {
	c.mu.Lock()
	if c.stop {
		c.mu.Unlock()
		return
	}
	c.stop = true
	c.hwake.Broadcast()
	c.mu.Unlock()
	c.helpers.Wait()
	c.dec.Close()
	c.bufs.unmap()
}
