package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"berth/mmapfs"
)

// UnpackOptions tune Unpack.
type UnpackOptions struct {
	// Limits bound what the image may hold; zero fields take defaults.
	Limits Limits
	// Progress receives progress about five times a second: one line
	// redrawn in place when it is a terminal, a line a second otherwise.
	// It may be nil.
	Progress io.Writer
	// Log receives warnings, such as skipped device nodes. It may be nil.
	Log io.Writer
	// Workers is the number of goroutines that unpack a berth image (the
	// unpacking goroutine and its helpers: they decode its frames and,
	// unless Writers is 1, create its files), and the zstd decoder's
	// concurrency for other inputs; 0 means GOMAXPROCS, at most the
	// CPUs (more would only take turns).
	Workers int
	// Writers is the number of goroutines creating the files of a berth
	// image; 0 means as for Workers, 1 writes on the unpacking goroutine only
	// (its helpers then only decode). The unpack runs on the larger of
	// Workers and Writers goroutines.
	Writers int
	// Platform picks the image of a multi-platform OCI index, as
	// "linux/arm64", "linux/amd64" or "linux/arm/v7"; "" is the running one.
	Platform string
	// Digest, when set ("sha256:…"), is the image's expected digest (see
	// Digest); any other image is refused before anything is written.
	Digest string
	// PublicKey, when set, is the path of an ed25519 public key (see
	// Keygen): an image without a valid signature by it is refused before
	// anything is written.
	PublicKey string
	// Signature is the signature file checked with PublicKey; "" means the
	// image's path with ".sig" appended.
	Signature string
}

// Stats describe a finished unpack.
type Stats struct {
	Format  string // FormatBerth, FormatZstd, FormatGzip, FormatTar, FormatOCI or FormatDocker
	Digest  string // the image's digest, when it was computed (Digest, PublicKey, Prepare)
	Entries int    // tar entries written (including skipped ones)
	Bytes   int64  // regular-file bytes written
	Frames  int    // zstd data frames of a berth image; 0 for other formats
	Layers  int    // layers of an OCI or docker image
	Elapsed time.Duration
	Work    Work // a berth image's: how its goroutines spent their time
	// Config is what the image says about running it (zero for a plain
	// tarball).
	Config Config
}

// Unpack extracts the image at src into dest. src is a berth image
// (decoded frame-parallel and written by several writers), any .tar.zst,
// .tar.gz or plain .tar (streamed), or an OCI image layout or docker save
// archive (its layers applied in order), recognised by content; an OCI
// layout holding several images takes "PATH:REF" to pick one. Entries
// that would land outside dest, by name, symlink or hardlink, are refused
// and nothing is written outside dest. Stricter than GNU tar, no entry may
// pass through a symlink, not even one already in dest or one that points
// inside it: a flattened root filesystem names every file by its real
// path. Errors name the entry and its byte offset in the tar stream.
//
// Into a missing or empty dest the unpack is all or nothing (atomic.go):
// the tree is staged on dest's filesystem, synced, and put in place only
// once complete; an error, a kill or a power loss leaves dest as it was
// (missing or empty), and a later unpack removes what an interrupted one
// left. Into a dest that holds files, entries are extracted in place, as
// tar does: existing files are replaced, existing directories kept (see
// extractor), and an error leaves what was written so far.
func Unpack(src, dest string, opts UnpackOptions) (Stats, error) {
	start := time.Now()
	stats, err := unpack(src, dest, opts)
	stats.Elapsed = time.Since(start)
	return stats, err
}

// unpack opens and verifies src, then extracts it into its target.
func unpack(src, dest string, opts UnpackOptions) (stats Stats, err error) {
	in, err := openInput(src, opts.Platform, opts.Limits.withDefaults())
	if err != nil {
		return stats, fmt.Errorf("unpack %s: %w", src, err)
	}
	defer in.close()
	stats.Format, stats.Layers = in.format, len(in.layers)
	if stats.Digest, err = verifyInput(in, opts); err != nil {
		return stats, fmt.Errorf("unpack %s: %w", src, err)
	}
	t, err := openTarget(dest)
	if err != nil {
		return stats, fmt.Errorf("unpack %s: %w", src, err)
	}
	defer t.close()
	reached("staging")
	rootHdr, err := extractInput(in, src, destDir{path: t.root, fd: t.rootfd}, opts, &stats)
	if err == nil {
		reached("unpacked")
		if err = t.commit(rootHdr, opts.Log); err != nil {
			err = fmt.Errorf("unpack %s: %w", src, err)
		}
	}
	if err != nil {
		t.abort()
		if t.how == inPlace {
			err = fmt.Errorf("%w (%s keeps the entries written before the error)", err, t.dir)
		}
	}
	return stats, err
}

// destDir is where extractInput writes: the directory fd when it is
// open (fd >= 0; path is then for messages only), else path, created if
// missing.
type destDir struct {
	path string
	fd   int
}

// extractInput writes the opened, verified input into dest and returns
// the metadata of its root entry (nil when it has none).
func extractInput(in *input, src string, dest destDir, opts UnpackOptions, stats *Stats) (*tar.Header, error) {
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	stats.Format, stats.Layers, stats.Config = in.format, len(in.layers), in.config
	lim, err := opts.Limits.forDest(dest.path, dest.fd)
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", src, err)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = defaultWorkers()
	}
	var plan *mergePlan
	if in.layers != nil { // check every layer before dest is touched
		if plan, err = planLayers(in.store, in.layers, lim, workers); err != nil {
			return nil, fmt.Errorf("unpack %s: %w", src, err)
		}
	}
	x, err := newExtractor(dest, log)
	if err != nil {
		return nil, fmt.Errorf("unpack %s: %w", src, err)
	}
	defer x.close()
	u := &unpacker{src: src, lim: lim, x: x, stats: stats, prog: newProgress(opts.Progress, "unpacking", in.size())}
	x.root.entries, x.root.entryLimit = &stats.Entries, lim.MaxEntries
	defer u.prog.done()
	switch {
	case in.layers != nil:
		err = u.runLayers(in, plan, workers)
	case in.format == FormatBerth && in.table.MaxFrame() <= lim.MaxFrameBytes:
		stats.Frames = len(in.table.Frames)
		err = u.runBerth(in, workers, opts.Writers)
	default:
		if in.table != nil {
			stats.Frames = len(in.table.Frames)
		}
		err = u.runStreamed(in, workers)
	}
	if err != nil {
		return nil, err
	}
	if err := x.finish(); err != nil {
		return nil, fmt.Errorf("unpack %s: %w", src, err)
	}
	return x.rootHdr, nil
}

// runStreamed decodes a whole zstd, gzip or plain tar stream in order.
func (u *unpacker) runStreamed(in *input, workers int) error {
	in.m.Advise(mmapfs.AdviseSequential)
	r := in.m.NewReader()
	u.prog.source = r.Offset
	arc, err := openStream(r, in.format, u.lim, workers)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", u.src, err)
	}
	defer arc.close()
	return u.runTar(arc.r, true)
}

// unpacker runs the tar loop: limits, offsets for errors, progress.
type unpacker struct {
	src      string
	lim      Limits
	x        *extractor
	stats    *Stats
	prog     *progress
	declared int64 // sum of the sizes in the headers so far
}

// countingReader counts the tar bytes read, for offsets in errors, and
// shows them to its tap. While hdr caps it, archive/tar reads one header.
type countingReader struct {
	r   io.Reader
	n   int64
	tap *tap
	hdr headerCap
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.hdr.read(c.r, p)
	c.tap.note(c.n, p[:n])
	c.n += int64(n)
	return n, err
}

// headerCap bounds what archive/tar may read while it reads one header,
// the previous entry's padding included: a chain of PAX or GNU long-name
// headers longer than the header limit is refused once it passes the
// limit, not after it is read whole (a few KB of compressed image can
// hold gigabytes of them).
type headerCap struct {
	on    bool
	left  int64
	limit int64 // MaxHeaderBytes, for the error
}

// start caps the reads at the padding and a header of limit bytes.
func (h *headerCap) start(limit int64) {
	h.on, h.left, h.limit = true, tarBlockSize+limit+1, limit
}

func (h *headerCap) stop() { h.on = false }

// read reads from r into p, no more than the cap leaves, and fails once
// nothing is left.
func (h *headerCap) read(r io.Reader, p []byte) (int, error) {
	if !h.on {
		return r.Read(p)
	}
	if h.left <= 0 {
		return 0, fmt.Errorf("%w: over the limit of %d", errHeaderTooBig, h.limit)
	}
	n, err := r.Read(p[:min(int64(len(p)), h.left)])
	h.left -= int64(n)
	return n, err
}

// cappedReader is r under a headerCap.
type cappedReader struct {
	r   io.Reader
	hdr headerCap
}

func (c *cappedReader) Read(p []byte) (int, error) { return c.hdr.read(c.r, p) }

// runTar extracts every entry of the tar stream r on this goroutine. With
// whole, r is the whole input and is read to its end.
func (u *unpacker) runTar(r io.Reader, whole bool) error {
	cr := &countingReader{r: r, tap: newTap(u.lim)}
	if u.prog.source == nil {
		u.prog.source = func() int64 { return cr.n }
	}
	tr := tar.NewReader(cr)
	var prev string
	var dataEnd int64 // where the previous entry's data (and padding) ends
	for {
		// What an entry left unread (one skipped) is read now, so that
		// the tap keeps headers only.
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return fmt.Errorf("unpack %s: entry %q: %w", u.src, prev, err)
		}
		before := cr.n
		cr.tap.begin(before)
		cr.hdr.start(u.lim.MaxHeaderBytes)
		hdr, err := tr.Next()
		cr.hdr.stop()
		cr.tap.end()
		if err == io.EOF {
			break
		}
		start := headerStart(dataEnd, before, cr.n)
		if err != nil {
			return u.headerError(prev, start, err)
		}
		sp, err := sparseOf(hdr, cr.tap, start, cr.n)
		var rel string
		if err == nil {
			rel, err = u.admit(hdr, cr.n-start, sp)
		}
		if err == nil {
			dataEnd = paddedEnd(cr.n, hdr)
			data := fileData{r: tr}
			if sp != nil {
				data = fileData{r: io.LimitReader(cr, sp.data), sparse: sp.segs}
			}
			var n int64
			n, err = u.x.extract(hdr, rel, data)
			u.stats.Bytes += n
			if err == nil && sp != nil {
				// Past the segments (an entry not written reads them
				// here) and the padding; a new reader from here.
				_, err = io.CopyN(io.Discard, cr, sp.data-n+sp.pad)
				tr, dataEnd = tar.NewReader(cr), cr.n
			}
		}
		u.stats.Entries++
		if err != nil {
			return fmt.Errorf("unpack %s: entry %q at offset %d: %w", u.src, hdr.Name, start, err)
		}
		prev = hdr.Name
		u.prog.tick(u.stats.Entries, u.declared)
	}
	if !whole {
		return nil
	}
	// Read to the end of the input, so a stream truncated or damaged after
	// the tar's end blocks is still reported, as zstd -d or gzip -d would.
	if err := drainTrailing(cr); err != nil {
		return fmt.Errorf("unpack %s: after the end of the archive, offset %d: %w", u.src, cr.n, err)
	}
	return nil
}

// drainTrailing reads what follows a tar's end blocks to its end, so a
// stream damaged there is still reported: at most maxTrailing bytes.
func drainTrailing(r io.Reader) error {
	n, err := io.Copy(io.Discard, io.LimitReader(r, maxTrailing+1))
	if err == nil && n > maxTrailing {
		err = fmt.Errorf("more than %d bytes after the end of the archive", maxTrailing)
	}
	return err
}

// storedSize is how many bytes of data follow hdr's header block, as
// archive/tar reads them: none for the types that are only a header (a
// hard or symbolic link, a device, a directory, a FIFO), whatever their
// size field says. (A sparse file stores less than its size: see
// sparseOf.)
func storedSize(hdr *tar.Header) int64 {
	if hdr.Typeflag >= tar.TypeLink && hdr.Typeflag <= tar.TypeFifo {
		return 0
	}
	return hdr.Size
}

// paddedEnd is where the data of hdr, whose header ends at off, ends with
// its padding: where the next header starts.
func paddedEnd(off int64, hdr *tar.Header) int64 {
	return off + (storedSize(hdr)+tarBlockSize-1)&^(tarBlockSize-1)
}

// headerStart is where the header just read began: after the previous
// entry's padding, or, for sparse entries that store less data than their
// size, what was read before it.
func headerStart(dataEnd, before, after int64) int64 {
	if dataEnd < before || dataEnd > after {
		return before
	}
	return dataEnd
}

// headerError names the header that could not be read.
func (u *unpacker) headerError(prev string, start int64, err error) error {
	where := "the first header"
	if prev != "" {
		where = fmt.Sprintf("the header after entry %q", prev)
	}
	return fmt.Errorf("unpack %s: %s, at offset %d: %w", u.src, where, start, err)
}

// maxTrailing is how much data may follow a tar's end blocks (GNU tar pads
// to 10 KiB records; some writers pad more).
const maxTrailing = 16 << 20

// Errors for entries over the limits.
var (
	errTooManyEntries = errors.New("too many entries")
	errTooManyBytes   = errors.New("too much data")
	errHeaderTooBig   = errors.New("header too large")
)

// admit checks one entry against the limits before anything is written
// and returns its clean relative path. A sparse file (sp) counts the
// blocks its segments touch, which is what it takes on disk: a one-byte
// segment takes a whole block.
func (u *unpacker) admit(hdr *tar.Header, headerBytes int64, sp *sparseLayout) (string, error) {
	rel, relErr := entryPath(hdr.Name)
	if u.stats.Entries+u.x.root.pending(rel, hdr)+1 > u.lim.MaxEntries {
		return "", fmt.Errorf("%w: over the limit of %d%s", errTooManyEntries, u.lim.MaxEntries, u.implicitWhy())
	}
	if headerBytes > u.lim.MaxHeaderBytes {
		return "", fmt.Errorf("%w: %d bytes, over the limit of %d", errHeaderTooBig, headerBytes, u.lim.MaxHeaderBytes)
	}
	size := hdr.Size
	if sp != nil {
		size = sp.disk()
	}
	if size < 0 || size > u.lim.MaxBytes-u.declared {
		return "", fmt.Errorf("%w: %d more bytes would pass the limit of %d%s", errTooManyBytes, size, u.lim.MaxBytes, u.lim.bytesWhy)
	}
	u.declared += size
	return rel, relErr
}

// implicitWhy says, in an error over the entry limit, that directories
// made for entries that name no parent count as entries, when some did.
func (u *unpacker) implicitWhy() string {
	if n := u.x.root.implicit; n > 0 {
		return fmt.Sprintf(", %d directories made for entries that name no parent included", n)
	}
	return ""
}

// defaultWorkers is how many goroutines unpack when the options leave it
// open: GOMAXPROCS, at most the CPUs (more would only take turns).
func defaultWorkers() int { return min(runtime.GOMAXPROCS(0), runtime.NumCPU()) }
