package container

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// tracing is on when BERTH_TRACE is set: the parent and the init then
// print "berth-trace PHASE NANOSECONDS" (CLOCK_MONOTONIC, shared by both
// processes) on stderr at each step of a start. make bench uses it for
// the start-up breakdown.
var tracing = os.Getenv("BERTH_TRACE") != ""

func trace(phase string) {
	if !tracing {
		return
	}
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	fmt.Fprintf(os.Stderr, "berth-trace %s %d\n", phase, ts.Nano())
}
