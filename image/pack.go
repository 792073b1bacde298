package image

import (
	"archive/tar"
	"bufio"
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"berth/internal/filekind"
	"berth/mmapfs"

	"golang.org/x/sys/unix"
)

// PackOptions tune Pack.
type PackOptions struct {
	// FrameSize is the decompressed size of a zstd frame: 0 means
	// DefaultFrameSize (4 MiB); otherwise MinFrameSize to MaxFrameSize
	// (64 KiB to 512 MiB), anything else is refused (see CheckFrameSize).
	FrameSize int
	// Log receives warnings, such as skipped sockets. It may be nil.
	Log io.Writer
	// Platform picks the image of a multi-platform OCI index; see
	// UnpackOptions.Platform.
	Platform string
	// Progress, when not nil, receives progress lines (entries and bytes
	// packed so far) as UnpackOptions.Progress does.
	Progress io.Writer
}

// The frame sizes Pack takes besides 0 (DefaultFrameSize): a smaller
// frame compresses worse and makes the seek table longer; a larger one
// could overrun the seek table's u32 fields (see maxFrameSize).
const (
	MinFrameSize = 64 << 10
	MaxFrameSize = maxFrameSize / 2
)

// ErrFrameSize is wrapped by CheckFrameSize's refusal; its text says what
// a frame size may be.
var ErrFrameSize = fmt.Errorf("want 0 (the default, %d MiB) or %d (%d KiB) to %d (%d MiB) bytes",
	DefaultFrameSize>>20, MinFrameSize, MinFrameSize>>10, MaxFrameSize, MaxFrameSize>>20)

// CheckFrameSize returns nil when Pack takes n as PackOptions.FrameSize:
// 0, or MinFrameSize to MaxFrameSize bytes.
func CheckFrameSize(n int) error {
	if n == 0 || n >= MinFrameSize && n <= MaxFrameSize {
		return nil
	}
	return fmt.Errorf("frame size %d: %w", n, ErrFrameSize)
}

// Pack writes the berth image of src to out. src is a directory (packed in
// sorted order, see the package doc), an archive in any format Unpack reads
// (its entries are copied in their order, names cleaned), or an OCI image
// layout or docker save archive (its layers merged into one tree, see
// merge.go); what an image says about running it (its Config) is kept
// in a frame of its own. out is replaced atomically: it is written to a temporary file
// beside it, synced and renamed over it, so a reader never sees a partial
// image. out must be missing or a regular file: a device, a FIFO, a socket,
// a directory or a symlink there is refused, not replaced.
func Pack(src, out string, opts PackOptions) (err error) {
	if err := CheckFrameSize(opts.FrameSize); err != nil {
		return fmt.Errorf("pack %s: %w", src, err)
	}
	size := cmp.Or(opts.FrameSize, DefaultFrameSize)
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	path, ref := splitRef(src)
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("pack %s: %w", src, err)
	}
	if err := filekind.CheckReplace(out); err != nil { // before the work
		return fmt.Errorf("pack %s: %w", src, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("pack %s: %w", src, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var self unix.Stat_t // the output file, which must not pack itself
	if err := unix.Fstat(int(tmp.Fd()), &self); err != nil {
		return fmt.Errorf("pack %s: stat %s: %w", src, tmp.Name(), err)
	}

	bw := bufio.NewWriterSize(tmp, 1<<20)
	fw, err := newFrameWriter(bw, size)
	if err != nil {
		return fmt.Errorf("pack %s: %w", src, err)
	}
	defer fw.abort()
	sink := &tarSink{tw: tar.NewWriter(fw), fw: fw, copyBuf: make([]byte, 1<<20), prog: newProgress(opts.Progress, "packing", 0)}
	defer sink.prog.done()
	var cfg Config
	if st.IsDir() && ref == "" && !isLayoutDir(src) {
		err = packDir(src, sink, log, fileID{self.Dev, self.Ino})
	} else {
		cfg, err = packInput(src, out, sink, log, opts.Platform)
	}
	if err != nil {
		return fmt.Errorf("pack %s: %w", src, err)
	}
	if err := sink.tw.Close(); err != nil {
		return fmt.Errorf("pack %s: finishing the tar stream: %w", src, err)
	}
	frames, err := fw.Close()
	if err != nil {
		return fmt.Errorf("pack %s: writing %s: %w", src, tmp.Name(), err)
	}
	index, err := sink.index(frames)
	if err != nil {
		return fmt.Errorf("pack %s: %w", src, err)
	}
	trailer := mmapfs.AppendIndexFrame(nil, index)
	if !cfg.Empty() {
		if trailer, err = appendConfigFrame(trailer, cfg); err != nil {
			return fmt.Errorf("pack %s: image config: %w", src, err)
		}
	}
	if err := fw.writeTrailer(trailer); err != nil {
		return fmt.Errorf("pack %s: writing %s: %w", src, tmp.Name(), err)
	}
	return commitFile(tmp, bw, out)
}

// commitFile flushes, syncs and renames the finished temporary file to out,
// then syncs the directory so the rename itself is durable. out is checked
// again just before the rename: something other than a regular file put
// there while packing is not replaced.
func commitFile(tmp *os.File, bw *bufio.Writer, out string) error {
	steps := []struct {
		what string
		do   func() error
	}{
		{"write", bw.Flush},
		{"chmod", func() error { return tmp.Chmod(0o644) }},
		{"fsync", tmp.Sync},
		{"close", tmp.Close},
		{"check", func() error { return filekind.CheckReplace(out) }},
		{"rename", func() error { return os.Rename(tmp.Name(), out) }},
		{"fsync directory", func() error { return syncDir(filepath.Dir(out)) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("pack: %s %s: %w", s.what, out, err)
		}
	}
	return nil
}

// syncDir fsyncs a directory.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// isLayoutDir reports whether dir is an OCI image layout.
func isLayoutDir(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "oci-layout"))
	return err == nil
}

// tarSink writes tar entries into a frameWriter, telling it where entries
// begin and which bytes are file data that may be cut between frames, and
// records each entry for the index.
type tarSink struct {
	tw      *tar.Writer
	fw      *frameWriter
	copyBuf []byte
	items   []mmapfs.IndexItem
	dataAt  []int64 // stream offset of each item's data
	prog    *progress
	bytes   int64 // file bytes of the entries so far, for prog
}

// add writes one entry with hdr.Size bytes of data read from data.
func (s *tarSink) add(hdr *tar.Header, data io.Reader) error {
	s.fw.entryBoundary()
	if hdr.ModTime.Nanosecond() != 0 {
		hdr.Format = tar.FormatPAX // else archive/tar rounds to seconds
	}
	if err := s.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if err := s.record(hdr, 0); err != nil {
		return err
	}
	if hdr.Size > 0 {
		s.fw.splittable = true
		n, err := io.CopyBuffer(s.tw, io.LimitReader(data, hdr.Size), s.copyBuf)
		s.fw.splittable = false
		if err != nil {
			return err
		}
		if n != hdr.Size {
			return fmt.Errorf("short read: got %d of %d bytes (file changed while packing?)", n, hdr.Size)
		}
	}
	return s.tw.Flush() // writes the padding: the next entry starts on a boundary
}
