package boot

import (
	"testing"
	"time"
)

// TestOutputLimiter: on a clock that only the waits move, the limiter
// lets a second's burst through at once, then outputRate units a second:
// short lines cost one, a line of 64 KiB sixty-five; each wait is at
// least outputPause.
func TestOutputLimiter(t *testing.T) {
	for _, tc := range []struct {
		lines, size int
		want        time.Duration // the waits in all
	}{
		{outputBurst, 1, 0},
		{outputBurst + 1, 1, outputPause},
		{3 * outputRate, 1, 2 * time.Second},
		{1000, 64 << 10, time.Duration((1000*65 - outputBurst) * int(time.Second) / outputRate)},
	} {
		now := time.Unix(1000, 0)
		var slept time.Duration
		l := newOutputLimiter(now)
		l.sleep = func(d time.Duration) {
			if d < outputPause {
				t.Errorf("a wait of %s, under %s", d, outputPause)
			}
			slept += d
			now = now.Add(d)
		}
		l.clock = func() time.Time { return now }
		for range tc.lines {
			l.take(now, tc.size)
		}
		// The last wait may overshoot the rate by up to one pause.
		if slept < tc.want || slept > tc.want+outputPause {
			t.Errorf("%d lines of %d bytes: waited %s, want %s", tc.lines, tc.size, slept, tc.want)
		}
	}
}
