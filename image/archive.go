package image

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// stream is the decompressed tar stream of an input read in order.
type stream struct {
	r     io.Reader
	close func()
}

// errUnknownFormat is returned for input that is none of the formats read.
var errUnknownFormat = errors.New("not a berth image, .tar.zst, .tar.gz, .tar, OCI image layout or docker save archive (unrecognised content)")

// openStream decompresses r, whose format was recognised by content. zstd
// windows are bounded, so a header asking for a huge window is refused
// before anything is allocated.
func openStream(r io.Reader, format string, lim Limits, workers int) (*stream, error) {
	switch format {
	case FormatBerth, FormatZstd:
		zr, err := zstd.NewReader(r,
			zstd.WithDecoderMaxWindow(lim.MaxWindow),
			zstd.WithDecoderMaxMemory(lim.MaxWindow),
			zstd.WithDecoderConcurrency(max(workers, 1)))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return &stream{r: windowReader{zr, lim}, close: zr.Close}, nil
	case FormatGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return &stream{r: zr, close: func() { zr.Close() }}, nil
	case FormatTar:
		return &stream{r: r, close: func() {}}, nil
	}
	return nil, errUnknownFormat
}
