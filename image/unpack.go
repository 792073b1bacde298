package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"time"

	"berth/mmapfs"
)

// UnpackOptions tune Unpack.
type UnpackOptions struct {
	// Limits bound what the image may hold; zero fields take defaults.
	Limits Limits
	// Progress receives a status line about once a second. It may be nil.
	Progress io.Writer
	// Log receives warnings, such as skipped device nodes. It may be nil.
	Log io.Writer
	// Workers is the number of frames decoded in parallel; 0 means
	// GOMAXPROCS.
	Workers int
}

// Stats describe a finished unpack.
type Stats struct {
	Format  string // FormatBerth, FormatZstd, FormatGzip or FormatTar
	Entries int    // tar entries written (including skipped ones)
	Bytes   int64  // regular-file bytes written
	Frames  int    // zstd data frames of a berth image; 0 for other formats
	Elapsed time.Duration
}

// Unpack extracts the image at src into dest, creating dest if it is
// missing. src is mapped read-only and its format recognised by content: a
// berth image (decoded frame-parallel), any .tar.zst, .tar.gz or plain .tar.
// Entries that would land outside dest, by name, symlink or hardlink, are
// refused and nothing is written outside dest. Stricter than GNU tar, no
// entry may pass through a symlink, not even one already in dest or one
// that points inside it: a flattened root filesystem names every file by its
// real path. Existing files are replaced, existing directories kept; see
// extractor. Errors name the entry and its byte offset in the tar stream.
func Unpack(src, dest string, opts UnpackOptions) (Stats, error) {
	start := time.Now()
	stats, err := unpack(src, dest, opts)
	stats.Elapsed = time.Since(start)
	return stats, err
}

func unpack(src, dest string, opts UnpackOptions) (stats Stats, err error) {
	lim := opts.Limits.withDefaults()
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	m, err := mmapfs.Map(src)
	if err != nil {
		return stats, fmt.Errorf("unpack: %w", err)
	}
	defer m.Close()
	arc, err := openArchive(m, lim, opts.Workers)
	if err != nil {
		return stats, fmt.Errorf("unpack %s: %w", src, err)
	}
	defer arc.close() // before m.Close: the workers read the mapping
	stats.Format, stats.Frames = arc.format, arc.frames

	x, err := newExtractor(dest, log)
	if err != nil {
		return stats, fmt.Errorf("unpack %s: %w", src, err)
	}
	defer x.close()
	u := &unpacker{src: src, lim: lim, x: x, stats: &stats, progress: opts.Progress, lastTick: time.Now()}
	err = mmapfs.Guard(func() error { return u.run(arc.r) })
	return stats, err
}

// unpacker runs the tar loop: limits, offsets for errors, progress.
type unpacker struct {
	src      string
	lim      Limits
	x        *extractor
	stats    *Stats
	progress io.Writer
	lastTick time.Time
	declared int64 // sum of the sizes in the headers so far
}

// countingReader counts the tar bytes read, for offsets in errors.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// run extracts every entry of the tar stream r, then the directory
// metadata.
func (u *unpacker) run(r io.Reader) error {
	cr := &countingReader{r: r}
	tr := tar.NewReader(cr)
	var prev string
	var dataEnd int64 // where the previous entry's data (and padding) ends
	for {
		before := cr.n
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// The header starts after the previous entry's padding; sparse
		// entries store less data than their size, so stay within what
		// was read.
		start := dataEnd
		if start < before || start > cr.n {
			start = before
		}
		if err != nil {
			where := "the first header"
			if prev != "" {
				where = fmt.Sprintf("the header after entry %q", prev)
			}
			return fmt.Errorf("unpack %s: %s, at offset %d: %w", u.src, where, start, err)
		}
		if err := u.admit(hdr, cr.n-start); err != nil {
			return fmt.Errorf("unpack %s: entry %q at offset %d: %w", u.src, hdr.Name, start, err)
		}
		dataEnd = cr.n + (hdr.Size+tarBlockSize-1)&^(tarBlockSize-1)
		n, err := u.x.extract(hdr, tr)
		u.stats.Entries++
		u.stats.Bytes += n
		if err != nil {
			return fmt.Errorf("unpack %s: entry %q at offset %d: %w", u.src, hdr.Name, start, err)
		}
		prev = hdr.Name
		u.tick()
	}
	// Read to the end of the input, so a stream truncated or damaged after
	// the tar's end blocks is still reported, as zstd -d or gzip -d would.
	if n, err := io.Copy(io.Discard, io.LimitReader(cr, maxTrailing+1)); err != nil {
		return fmt.Errorf("unpack %s: after the end of the archive, offset %d: %w", u.src, cr.n, err)
	} else if n > maxTrailing {
		return fmt.Errorf("unpack %s: more than %d bytes after the end of the archive", u.src, maxTrailing)
	}
	if err := u.x.finish(); err != nil {
		return fmt.Errorf("unpack %s: %w", u.src, err)
	}
	return nil
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

// admit checks one entry against the limits before anything is written.
func (u *unpacker) admit(hdr *tar.Header, headerBytes int64) error {
	if u.stats.Entries+1 > u.lim.MaxEntries {
		return fmt.Errorf("%w: over the limit of %d", errTooManyEntries, u.lim.MaxEntries)
	}
	if headerBytes > u.lim.MaxHeaderBytes {
		return fmt.Errorf("%w: %d bytes, over the limit of %d", errHeaderTooBig, headerBytes, u.lim.MaxHeaderBytes)
	}
	if hdr.Size < 0 || hdr.Size > u.lim.MaxBytes-u.declared {
		return fmt.Errorf("%w: %d more bytes would pass the limit of %d", errTooManyBytes, hdr.Size, u.lim.MaxBytes)
	}
	u.declared += hdr.Size
	return nil
}

// tick writes a progress line about once a second.
func (u *unpacker) tick() {
	if u.progress == nil || u.stats.Entries%64 != 0 {
		return
	}
	now := time.Now()
	if now.Sub(u.lastTick) < time.Second {
		return
	}
	u.lastTick = now
	fmt.Fprintf(u.progress, "unpacking: %d entries, %.1f MiB\n", u.stats.Entries, float64(u.stats.Bytes)/(1<<20))
}
