package boot

import (
	"math"
	"runtime/debug"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The Go collector's settings for PID 1. Once booted, PID 1 lives for
// months with a small, steady heap: it collects at half the default
// growth to keep its footprint small. While it boots — a config parsed,
// images decoded, a burst of garbage that is soon all gone — collecting
// that often costs more than it saves: on one slow CPU every cycle delays
// the first container. So while it boots, the heap may grow to nine times
// its live size before a collection, and no further than a memory limit
// (a quarter of the RAM, at most 64 MiB), which keeps a large image's
// unpack from growing it past what the steady setting would let it reach.
// The boot is over, for the collector, when the images are all ready.
const (
	steadyGCPercent = 50
	bootGCPercent   = 800
	bootMemoryLimit = 64 << 20
)

// gcPercent is the collector's GOGC as berth last set it, for berth
// status; 0 before berth sets it (Go's default, 100, applies).
var gcPercent atomic.Int64

// bootGC sets the collector for the boot.
func bootGC() {
	limit := int64(bootMemoryLimit)
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		limit = min(limit, int64(si.Totalram)*int64(si.Unit)/4)
	}
	debug.SetGCPercent(bootGCPercent)
	gcPercent.Store(bootGCPercent)
	debug.SetMemoryLimit(limit)
}

// steadyGC sets the collector for the months after the boot and hands
// the boot's garbage back to the kernel.
func steadyGC() {
	debug.SetGCPercent(steadyGCPercent)
	gcPercent.Store(steadyGCPercent)
	debug.SetMemoryLimit(math.MaxInt64)
	debug.FreeOSMemory()
	restoreMonitor()
}
