package boot

import "time"

// A container's output costs PID 1 CPU per line (its time, the ring,
// the log file, the console), outside the container's cgroup: a
// container limited to half a CPU writing two-byte lines made berth use
// more than one CPU. berth therefore reads a container's output at
// most at outputRate units a second, a line costing one unit and one
// more per KiB: about 10,000 short lines or 10 MB a second. Past that
// it stops reading for a while; the pipe fills and the container's
// writes wait, so nothing is lost, and a container can only slow
// itself down. The limit holds until the pipe is closed, through the
// drain after the container's exit (outputdrain.go).
const (
	outputRate  = 10000
	outputBurst = outputRate            // a second's worth at once
	outputPause = 10 * time.Millisecond // the shortest wait, ~100 lines
)

// outputLimiter is a token bucket of outputRate units a second.
type outputLimiter struct {
	tokens float64
	last   time.Time
	sleep  func(time.Duration) // time.Sleep and time.Now; tests replace them
	clock  func() time.Time
}

func newOutputLimiter(now time.Time) *outputLimiter {
	return &outputLimiter{tokens: outputBurst, last: now, sleep: time.Sleep, clock: time.Now}
}

// take charges a line of n bytes read at now, first waiting, when the
// bucket is empty, until it holds enough for at least outputPause's
// worth of lines. It returns the line's time: now, or the time after
// the wait.
func (l *outputLimiter) take(now time.Time, n int) time.Time {
	l.refill(now)
	if l.tokens < 1 {
		wait := max(time.Duration((1-l.tokens)/outputRate*float64(time.Second)), outputPause)
		l.sleep(wait)
		l.refill(now.Add(wait)) // at least that long has passed
		now = l.clock()
	}
	l.tokens -= 1 + float64(n/1024)
	return now
}

func (l *outputLimiter) refill(now time.Time) {
	if d := now.Sub(l.last); d > 0 {
		l.tokens = min(l.tokens+d.Seconds()*outputRate, outputBurst)
	}
	l.last = now
}
