package image

import (
	"archive/tar"
	"fmt"
	"io"
	"runtime"

	"berth/mmapfs"
)

// runBerth extracts a berth image: workers decode frames in parallel
// straight from the mapping, this goroutine reads the tar headers from the
// decoded frames and makes the directories, and writers create the files
// from slices of the frames (no copy). See writerPool for why the order in
// which writers finish does not matter.
func (u *unpacker) runBerth(in *input, workers, writers int) error {
	if writers <= 0 {
		writers = runtime.GOMAXPROCS(0)
	}
	in.m.Advise(mmapfs.AdviseSequential)
	in.m.Advise(mmapfs.AdviseWillNeed)
	fr, err := newFrameReader(in.m, in.table, u.lim, workers)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", u.src, err)
	}
	defer fr.close() // before the mapping is unmapped: the workers read it
	s := newFrameStream(fr)
	s.tap = newTap(u.lim)
	defer s.close()
	u.prog.source = s.offset
	if writers == 1 {
		return mmapfs.Guard(func() error { return u.runTar(s, true) })
	}
	pool := newWriterPool(u.x, u.src, writers)
	defer pool.close()
	s.onPull = pool.flush
	b := &berthLoop{u: u, s: s, pool: pool, seen: make(pathSet)}
	err = b.run()
	if berr := pool.barrier(); err == nil {
		err = berr
	}
	u.stats.Bytes += pool.bytes.Load()
	return err
}

// berthLoop is the unpacking goroutine's state in runBerth.
type berthLoop struct {
	u    *unpacker
	s    *frameStream
	pool *writerPool
	seen pathSet
	tr   *tar.Reader
}

func (b *berthLoop) run() error {
	u, s := b.u, b.s
	b.tr = tar.NewReader(s)
	var prev string
	var dataEnd int64
	for {
		before := s.offset()
		s.tap.begin(before)
		hdr, err := b.tr.Next()
		s.tap.end()
		if err == io.EOF {
			break
		}
		start := headerStart(dataEnd, before, s.offset())
		if err != nil {
			return u.headerError(prev, start, err)
		}
		if b.pool.failed.Load() {
			return b.pool.barrier()
		}
		dataEnd = s.offset() + (hdr.Size+tarBlockSize-1)&^(tarBlockSize-1)
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
	if _, err := io.Copy(io.Discard, io.LimitReader(s, maxTrailing+1)); err != nil {
		return fmt.Errorf("unpack %s: after the end of the archive, offset %d: %w", u.src, s.offset(), err)
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
	if sp != nil {
		return b.sparseFile(hdr, rel, sp)
	}
	if u.x.root.full() {
		if err := b.pool.barrier(); err != nil {
			return err
		}
	}
	plain := hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA
	switch {
	case repeat || hdr.Typeflag == tar.TypeLink || !(plain || hdr.Typeflag == tar.TypeDir || hdr.Typeflag == tar.TypeSymlink ||
		hdr.Typeflag == tar.TypeFifo || hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock):
		// Order matters (a hardlink's target must be complete, a repeated
		// path replaces the earlier one), or the type is rare: in order.
		if err := b.pool.barrier(); err != nil {
			return err
		}
		n, err := u.x.extract(hdr, rel, fileData{r: b.tr})
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
	b.pool.submit(job)
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
	b.tr = tar.NewReader(b.s) // the old one would skip the data once more
	return nil
}

// sparseFile writes a sparse file on this goroutine, after the writers
// are done, reading its segments from the stream, and moves past them and
// their padding: the tar reader starts again there.
func (b *berthLoop) sparseFile(hdr *tar.Header, rel string, sp *sparseLayout) error {
	if err := b.pool.barrier(); err != nil {
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
	b.tr = tar.NewReader(b.s)
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
func (f *frameSlicer) writeToFD(fd int) (int64, error) {
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
		n, err := writeChunks(fd, [][]byte{cur})
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
