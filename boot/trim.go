package boot

import (
	"runtime/debug"
	"time"
)

// trimQuiet is how long the supervisor waits after the last container
// start or exit before it hands the memory those left free back to the
// kernel.
const trimQuiet = 2 * time.Second

// trimmer returns PID 1's free memory to the kernel once the containers
// have been quiet for trimQuiet. A start or an exit allocates more than
// anything else PID 1 does (the container's plan, its child's stack, its
// output pipe and reader); the collector frees that soon, but the Go
// runtime gives the pages back to the kernel only gradually, so after a
// burst of restarts PID 1 would keep the heap the burst grew for minutes.
// A trim is one collection and the madvise of the free pages: about a
// millisecond with PID 1's small heap, at most once per quiet period.
type trimmer struct {
	pending bool      // a start or an exit since the last trim
	last    time.Time // of the last start or exit
	trims   int
}

// activity records a container start or exit at now.
func (t *trimmer) activity(now time.Time) { t.pending, t.last = true, now }

// run trims when the containers have been quiet long enough. It returns
// when it next needs to run, or the zero time when nothing is pending.
func (t *trimmer) run(now time.Time) time.Time {
	if !t.pending {
		return time.Time{}
	}
	if at := t.last.Add(trimQuiet); now.Before(at) {
		return at
	}
	t.pending = false
	t.trims++
	debug.FreeOSMemory()
	return time.Time{}
}
