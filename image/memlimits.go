package image

import (
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// The memory limits' defaults follow the machine's memory, so an image
// cannot make berth ask for more than the board has. A streamed zstd
// decoder allocates about twice its window, in one request: on a 64 MB
// board a frame asking for a 128 MiB window made the kernel refuse the
// mapping (the request alone is more than the machine's memory), and the
// Go runtime ends the process on that, PID 1 included. Frames decoded
// whole are held three or more at once (frameBuffers), and each
// goroutine decoding holds a compressed frame (copyLimit): at most
// one frame more per CPU.
const (
	minDefaultWindow = 8 << 20 // what zstd's format asks every decoder to handle
	minDefaultFrame  = 4 << 20 // berth's default frames, decoded whole everywhere
	windowShare      = 8       // a window of at most 1/8 of memory: about 1/4 decoding
	frameShare       = 32      // a frame of at most 1/32 of memory: 3/32 or more held
)

// machineMemory is the machine's RAM in bytes (sysinfo), 0 when unknown.
func machineMemory() uint64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(max(si.Unit, 1))
}

// memoryShare is mem/share rounded down to a power of two and kept within
// [lo, hi]: hi when mem is unknown (0).
func memoryShare(mem, share, lo, hi uint64) uint64 {
	if mem == 0 {
		return hi
	}
	v := mem / share
	if v == 0 {
		return lo
	}
	v = 1 << (bits.Len64(v) - 1)
	return min(max(v, lo), hi)
}

// memoryDefaults sets MaxWindow and MaxFrameBytes, where they are zero,
// for a machine of mem bytes of RAM (0: unknown, the fixed defaults).
func (l Limits) memoryDefaults(mem uint64) Limits {
	if l.MaxWindow == 0 {
		l.MaxWindow = memoryShare(mem, windowShare, minDefaultWindow, DefaultMaxWindow)
		if mem != 0 && l.MaxWindow != DefaultMaxWindow {
			l.windowWhy = fmt.Sprintf(" (1/%d of this machine's %d MiB of memory, at least %d MiB)", windowShare, mem>>20, minDefaultWindow>>20)
		}
	}
	if l.MaxFrameBytes <= 0 {
		l.MaxFrameBytes = int64(memoryShare(mem, frameShare, minDefaultFrame, DefaultMaxFrameBytes))
	}
	return l
}

// windowReader names the limit when a zstd stream asks for a window, or
// a decoded size, over it.
type windowReader struct {
	r   io.Reader
	lim Limits
}

func (w windowReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && (errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded)) {
		err = fmt.Errorf("zstd: the stream asks for a window over the limit of %d MiB%s; compress it with a smaller window (zstd without --long) or pack it as a berth image: %w",
			w.lim.MaxWindow>>20, w.lim.windowWhy, err)
	}
	return n, err
}
