package image

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"berth/mmapfs"

	"github.com/klauspost/compress/zstd"
)

// frameReader decodes the data frames of a berth image in parallel, each
// with DecodeAll straight from the mapping, and reads them back in order as
// one tar stream. Memory is bounded: at most about 3×workers decoded frames
// exist at once, each no larger than its seek table size.
type frameReader struct {
	data  []byte // the mapped image; read only by the workers, under Guard
	table *seekTable
	dec   *zstd.Decoder

	order chan *decodedFrame // frames in stream order, as they are queued
	free  chan []byte        // recycled output buffers
	stop  chan struct{}      // closed by Close
	wg    sync.WaitGroup     // the dispatcher and the workers
	once  sync.Once

	cur decodedFrame // frame being read
	pos int          // read position in cur.buf
	err error        // sticky read error
}

// decodedFrame is one frame's output, valid once ready is closed.
type decodedFrame struct {
	index int
	buf   []byte
	err   error
	ready chan struct{}
}

// newFrameReader starts decoding table's frames from data on workers
// goroutines.
func newFrameReader(data []byte, table *seekTable, lim Limits, workers int) (*frameReader, error) {
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(workers),
		zstd.WithDecoderMaxMemory(uint64(lim.MaxFrameBytes)),
		zstd.WithDecoderMaxWindow(max(lim.MaxWindow, zstd.MinWindowSize)),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	r := &frameReader{
		data:  data,
		table: table,
		dec:   dec,
		order: make(chan *decodedFrame, 2*workers),
		free:  make(chan []byte, 3*workers+1),
		stop:  make(chan struct{}),
		cur:   decodedFrame{index: -1},
	}
	jobs := make(chan *decodedFrame, workers)
	r.wg.Add(1 + workers)
	go r.dispatch(jobs)
	for range workers {
		go r.work(jobs)
	}
	return r, nil
}

// dispatch queues every frame, in order, for the reader and the workers.
func (r *frameReader) dispatch(jobs chan<- *decodedFrame) {
	defer r.wg.Done()
	defer close(jobs)
	defer close(r.order)
	for i := range r.table.frames {
		f := &decodedFrame{index: i, ready: make(chan struct{})}
		select {
		case r.order <- f:
		case <-r.stop:
			return
		}
		select {
		case jobs <- f:
		case <-r.stop:
			return
		}
	}
}

// work decodes queued frames. A fault on the mapping (the file shrank)
// becomes the frame's error.
func (r *frameReader) work(jobs <-chan *decodedFrame) {
	defer r.wg.Done()
	for f := range jobs {
		f.err = mmapfs.Guard(func() error {
			var err error
			f.buf, err = r.decode(f.index)
			return err
		})
		if f.err != nil {
			f.err = fmt.Errorf("zstd frame %d at image offset %d: %w", f.index, r.table.offsets[f.index], f.err)
		}
		close(f.ready)
	}
}

// decode decompresses frame i into a buffer of exactly its table size and
// checks it against the table.
func (r *frameReader) decode(i int) ([]byte, error) {
	e := r.table.frames[i]
	off := r.table.offsets[i]
	src := r.data[off : off+int64(e.csize)]
	if len(src) < 4 || binary.LittleEndian.Uint32(src) != zstdFrameMagic {
		return nil, errors.New("not a zstd frame")
	}
	// Frame_Header_Descriptor bit 2 says the frame carries a content
	// checksum, which must then match the table's.
	if r.table.hasChecksums && len(src) > 8 && src[4]&4 != 0 &&
		binary.LittleEndian.Uint32(src[len(src)-4:]) != e.checksum {
		return nil, errors.New("checksum differs from the seek table's")
	}
	var buf []byte
	select {
	case buf = <-r.free:
	default:
	}
	if cap(buf) < int(e.dsize) {
		buf = make([]byte, 0, e.dsize)
	}
	out, err := r.dec.DecodeAll(src, buf[:0:e.dsize])
	if err != nil {
		return nil, err
	}
	if len(out) != int(e.dsize) {
		return nil, fmt.Errorf("decoded %d bytes, seek table says %d", len(out), e.dsize)
	}
	return out, nil
}

// Read returns the decoded tar stream in order.
func (r *frameReader) Read(p []byte) (int, error) {
	for r.pos >= len(r.cur.buf) {
		if r.err != nil {
			return 0, r.err
		}
		if r.cur.buf != nil {
			select {
			case r.free <- r.cur.buf:
			default:
			}
			r.cur.buf = nil
		}
		f, ok := <-r.order
		if !ok {
			if r.cur.index+1 != len(r.table.frames) {
				r.err = errors.New("frame reader closed")
			} else {
				r.err = io.EOF
			}
			continue
		}
		<-f.ready
		if f.err != nil {
			r.err = f.err
			continue
		}
		r.cur, r.pos = *f, 0
	}
	n := copy(p, r.cur.buf[r.pos:])
	r.pos += n
	return n, nil
}

// Close stops the decoding and waits for the workers, so the mapping may be
// unmapped afterwards.
func (r *frameReader) Close() {
	r.once.Do(func() {
		close(r.stop)
		for range r.order { // let the dispatcher finish
		}
		r.wg.Wait()
		r.dec.Close()
	})
}
