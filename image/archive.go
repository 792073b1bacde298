package image

import (
	"errors"
	"fmt"
	"io"
	"runtime"

	"berth/mmapfs"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// archive is the decompressed tar stream of a mapped image.
type archive struct {
	format string
	frames int // zstd data frames of a berth image; 0 otherwise
	r      io.Reader
	close  func()
}

// errUnknownFormat is returned for input that is none of the formats read.
var errUnknownFormat = errors.New("not a berth image, .tar.zst, .tar.gz or .tar (unrecognised content)")

// openArchive recognises the format of m by content and returns its tar
// stream. Berth images whose frames fit Limits.MaxFrameBytes are decoded
// frame by frame on workers goroutines; everything else is streamed. The
// caller must close the archive before unmapping m.
func openArchive(m *mmapfs.Mapping, lim Limits, workers int) (*archive, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var format string
	var table *seekTable
	err := mmapfs.Guard(func() error {
		format = detectFormat(m.Bytes())
		if format == FormatBerth {
			var err error
			table, err = parseSeekTable(m.Bytes())
			if err != nil {
				return fmt.Errorf("berth image: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	whole := io.NewSectionReader(m, 0, m.Size())
	switch format {
	case FormatBerth:
		if table.maxFrame() <= lim.MaxFrameBytes {
			fr, err := newFrameReader(m.Bytes(), table, lim, workers)
			if err != nil {
				return nil, err
			}
			return &archive{format: format, frames: len(table.frames), r: fr, close: fr.Close}, nil
		}
		a, err := openZstdStream(whole, lim, workers)
		if err == nil {
			a.format, a.frames = format, len(table.frames)
		}
		return a, err
	case FormatZstd:
		return openZstdStream(whole, lim, workers)
	case FormatGzip:
		zr, err := gzip.NewReader(whole)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return &archive{format: format, r: zr, close: func() { zr.Close() }}, nil
	case FormatTar:
		return &archive{format: format, r: whole, close: func() {}}, nil
	}
	return nil, errUnknownFormat
}

// openZstdStream decodes a zstd stream with a bounded window, so a header
// asking for a huge window is refused before anything is allocated.
func openZstdStream(r io.Reader, lim Limits, workers int) (*archive, error) {
	zr, err := zstd.NewReader(r,
		zstd.WithDecoderMaxWindow(lim.MaxWindow),
		zstd.WithDecoderMaxMemory(lim.MaxWindow),
		zstd.WithDecoderConcurrency(workers))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return &archive{format: FormatZstd, r: zr, close: zr.Close}, nil
}

// maxFrame is the decompressed size of the biggest frame in the table.
func (t *seekTable) maxFrame() int64 {
	var m uint32
	for _, f := range t.frames {
		m = max(m, f.dsize)
	}
	return int64(m)
}
