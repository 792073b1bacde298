package container

import (
	"fmt"
	"os"
	"strings"

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

// traceRSS prints the calling process's peak resident set size (VmHWM)
// as "berth-rss WHO KIB" when tracing.
func traceRSS(who string) {
	if !tracing {
		return
	}
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Fprintf(os.Stderr, "berth-rss %s %s\n", who, strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
}

// Trace records phase when BERTH_TRACE is set; berth's main marks its own
// start with it.
func Trace(phase string) { trace(phase) }
