package image

import (
	"archive/tar"
	"fmt"
	"io"
	"time"

	"berth/mmapfs"
)

// runBerth extracts a berth image on a crew (crew.go): frames are decoded
// from copies read out of the image (framereader.go), this goroutine
// reads the tar headers from the decoded frames and makes the
// directories, and batches of whole files are written from slices of the
// frames (no copy) by whichever goroutine is free. See parallel.go for
// why the order in which they finish does not matter.
func (u *unpacker) runBerth(in *input, workers, writers int) error {
	if writers <= 0 {
		writers = defaultWorkers()
	}
	in.m.Advise(mmapfs.AdviseSequential)
	in.m.Advise(mmapfs.AdviseWillNeed)
	x := u.x
	if writers == 1 {
		x = nil // helpers decode; this goroutine writes every entry
	}
	c, err := newCrew(in.m, in.table, u.lim, max(workers, writers)-1, x, u.src)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", u.src, err)
	}
	start := time.Now()
	defer func() { u.stats.Work = c.finish(time.Since(start)) }()
	defer c.close() // before the mapping is unmapped: the helpers read it
	s := newFrameStream(c)
	s.tap = newTap(u.lim)
	defer s.close()
	u.prog.source = s.offset
	if x == nil {
		return mmapfs.Guard(func() error { return u.runTar(s, true) })
	}
	b := &berthLoop{u: u, s: s, out: &batcher{c: c}, seen: make(pathSet)}
	s.onPull = b.out.flush
	err = b.run()
	if berr := b.out.barrier(); err == nil {
		err = berr
	}
	u.stats.Bytes += c.bytes.Load()
	return err
}

// berthLoop is the unpacking goroutine's state in runBerth.
type berthLoop struct {
	u    *unpacker
	s    *frameStream
	out  *batcher
	seen pathSet
	// The current entry: its data (archive/tar's reader when it read the
	// header), where that data ends and where the next header starts.
	data           io.Reader
	dataEnd, hdrAt int64
}

func (b *berthLoop) run() error {
	u, s := b.u, b.s
	var prev string
	var dataEnd int64
	for {
		before := s.offset()
		s.tap.begin(before)
		hdr, err := b.header()
		s.tap.end()
		if err == io.EOF {
			break
		}
		start := headerStart(dataEnd, before, s.offset())
		if err != nil {
			return u.headerError(prev, start, err)
		}
		if b.out.c.failed.Load() {
			return b.out.barrier()
		}
		dataEnd = paddedEnd(s.offset(), hdr)
		sp, err := sparseOf(hdr, s.tap, start, s.offset())
		if err == nil {
			err = b.entry(hdr, start, s.offset()-start, sp)
		}
		if err != nil {
			return fmt.Errorf("unpack %s: entry %q at offset %d: %w", u.src, hdr.Name, start, err)
		}
		if sp != nil {
			dataEnd = s.offset()
		}
		u.stats.Entries++
		prev = hdr.Name
		u.prog.tick(u.stats.Entries, u.declared)
		if u.stats.Entries == crashEntry {
			reached("extracting")
		}
	}
	// The stream must end where the seek table says, with nothing after
	// the tar's end blocks but padding.
	end := s.offset()
	if err := drainTrailing(s); err != nil {
		return fmt.Errorf("unpack %s: after the end of the archive, offset %d: %w", u.src, end, err)
	}
	return nil
}

// header moves past the rest of the current entry and reads the next
// header: a plain one lying whole in the current frame with fastHeader,
// any other with a new archive/tar reader, which then reads its data too.
func (b *berthLoop) header() (*tar.Header, error) {
	if err := b.skip(); err != nil {
		return nil, err
	}
	s := b.s
	var hdr *tar.Header
	if cur, err := s.current(); err == nil && len(cur) >= tarBlockSize { // else the reader reports the error
		hdr = fastHeader(cur[:tarBlockSize])
	}
	if hdr != nil {
		s.pos += tarBlockSize
		s.off += tarBlockSize
	} else {
		cr := &cappedReader{r: s}
		tr := tar.NewReader(cr)
		cr.hdr.start(b.u.lim.MaxHeaderBytes)
		var err error
		if hdr, err = tr.Next(); err != nil {
			return nil, err
		}
		cr.hdr.stop()
		b.data = tr
	}
	size := storedSize(hdr) // what archive/tar takes for the entry's data
	b.dataEnd = s.offset() + size
	b.hdrAt = b.dataEnd + (tarBlockSize-size%tarBlockSize)%tarBlockSize
	if b.data == nil {
		b.data = &frameSlicer{s: s, left: size}
	}
	return hdr, nil
}

// skip moves to the next header past what is left of the current entry's
// data and its padding, as archive/tar does: data cut short is an error,
// padding cut short the end of the archive.
func (b *berthLoop) skip() error {
	b.data = nil
	s := b.s
	if n := b.hdrAt - s.offset(); n > 0 {
		if _, err := s.Seek(n, io.SeekCurrent); err != nil {
			return err
		}
	}
	switch {
	case s.offset() < b.dataEnd:
		return io.ErrUnexpectedEOF
	case s.offset() < b.hdrAt:
		return io.EOF
	}
	return nil
}

// entry handles one header: on this goroutine, or handed to the writers.
// sp is a sparse file's layout.
func (b *berthLoop) entry(hdr *tar.Header, start, headerBytes int64, sp *sparseLayout) error {
	u := b.u
	rel, err := u.admit(hdr, headerBytes, sp)
	if err != nil {
		return err
	}
	repeat, err := b.seen.admit(rel, hdr.Typeflag == tar.TypeDir)
	if err != nil {
		return err
	}
	// The writers count the directories an entry implies as they make
	// them, behind this loop: the paths seen (each at most every entry
	// and implied directory the writers will count) bound it here.
	if len(b.seen) > u.lim.MaxEntries {
		return fmt.Errorf("%w: over the limit of %d paths, the directories the entries imply included", errTooManyEntries, u.lim.MaxEntries)
	}
	if sp != nil {
		return b.sparseFile(hdr, rel, sp)
	}
	if u.x.root.full() {
		if err := b.out.barrier(); err != nil {
			return err
		}
	}
	plain := hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA
	switch {
	case repeat || hdr.Typeflag == tar.TypeLink || !(plain || hdr.Typeflag == tar.TypeDir || hdr.Typeflag == tar.TypeSymlink ||
		hdr.Typeflag == tar.TypeFifo || hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock):
		// Order matters (a hardlink's target must be complete, a repeated
		// path replaces the earlier one), or the type is rare: in order.
		if err := b.out.barrier(); err != nil {
			return err
		}
		n, err := u.x.extract(hdr, rel, fileData{r: b.data})
		u.stats.Bytes += n
		return err
	case hdr.Typeflag == tar.TypeDir:
		u.x.root.beginEntry()
		return u.x.mkdir(rel, hdr)
	case rel == ".":
		return errRootNotDir
	}
	u.x.root.beginEntry()
	d, base, err := u.x.root.parent(rel, true)
	if err != nil {
		return err
	}
	job := &writeJob{hdr: hdr, rel: rel, dir: d, base: base, offset: start}
	if plain && hdr.Size > 0 {
		var ok bool
		job.chunks, job.refs, ok, err = b.s.take(hdr.Size)
		if err != nil {
			return fmt.Errorf("reading data: %w", err)
		}
		if !ok {
			return b.bigFile(job)
		}
	}
	b.out.add(job)
	return nil
}

// bigFile writes a file whose data spans more frames than take may hold,
// on this goroutine, straight from the frames as they arrive, and then
// moves the tar reader past its data.
func (b *berthLoop) bigFile(j *writeJob) error {
	n, err := b.u.x.writeFileAt(j.dir, j.base, j.rel, j.hdr, fileData{r: &frameSlicer{s: b.s, left: j.hdr.Size}}, true)
	b.u.stats.Bytes += n
	if err != nil {
		return err
	}
	pad := (tarBlockSize - j.hdr.Size%tarBlockSize) % tarBlockSize
	if _, err := b.s.Seek(pad, io.SeekCurrent); err != nil {
		return err
	}
	b.dataEnd, b.hdrAt = b.s.offset(), b.s.offset()
	return nil
}

// sparseFile writes a sparse file on this goroutine, after the writers
// are done, reading its segments from the stream, and moves past them and
// their padding: the tar reader starts again there.
func (b *berthLoop) sparseFile(hdr *tar.Header, rel string, sp *sparseLayout) error {
	if err := b.out.barrier(); err != nil {
		return err
	}
	n, err := b.u.x.extract(hdr, rel, fileData{r: io.LimitReader(b.s, sp.data), sparse: sp.segs})
	b.u.stats.Bytes += n
	if err != nil {
		return err
	}
	if _, err := b.s.Seek(sp.data-n+sp.pad, io.SeekCurrent); err != nil {
		return err
	}
	b.dataEnd, b.hdrAt = b.s.offset(), b.s.offset()
	return nil
}

// frameSlicer reads up to left bytes of a frameStream; writeToFD writes
// them to a file straight from the frames.
type frameSlicer struct {
	s    *frameStream
	left int64
}

func (f *frameSlicer) Read(p []byte) (int, error) {
	if f.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	n, err := f.s.Read(p)
	f.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// writeToFD writes the bytes to fd without copying them.
func (f *frameSlicer) writeToFD(fd int, calls fileCalls) (int64, error) {
	var total int64
	for f.left > 0 {
		cur, err := f.s.current()
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return total, fmt.Errorf("reading data at byte %d of the file: %w", total, err)
		}
		cur = cur[:min(int64(len(cur)), f.left)]
		n, err := writeChunks(fd, [][]byte{cur}, calls)
		total += n
		f.s.pos += int(n)
		f.s.off += n
		f.left -= n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
