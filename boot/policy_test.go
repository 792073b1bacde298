package boot

import (
	"strings"
	"testing"
	"time"
)

// fakeClock is advanced by the tests.
type fakeClock struct{ now time.Time }

func (c *fakeClock) advance(d time.Duration) time.Time { c.now = c.now.Add(d); return c.now }

func TestRestartPolicy(t *testing.T) {
	type step struct {
		status  int
		ran     time.Duration
		restart bool
		delay   time.Duration
		failed  bool
	}
	tests := []struct {
		name  string
		sup   supervision
		steps []step
	}{
		{"never, success", supervision{restart: "never"}, []step{{0, time.Second, false, 0, false}}},
		{"never, failure marks failed", supervision{restart: "never"}, []step{{1, time.Second, false, 0, true}}},
		{"on-failure, success stays down", supervision{restart: "on-failure", restartWindow: time.Minute}, []step{{0, time.Second, false, 0, false}}},
		{"on-failure backs off, doubling to the cap", supervision{restart: "on-failure", restartWindow: time.Hour, restartDelay: BackoffMin}, []step{
			{1, 0, true, 100 * time.Millisecond, false},
			{1, 0, true, 200 * time.Millisecond, false},
			{1, 0, true, 400 * time.Millisecond, false},
			{1, 0, true, 800 * time.Millisecond, false},
			{1, 0, true, 1600 * time.Millisecond, false},
			{1, 0, true, 3200 * time.Millisecond, false},
			{1, 0, true, 6400 * time.Millisecond, false},
			{1, 0, true, 12800 * time.Millisecond, false},
			{1, 0, true, 25600 * time.Millisecond, false},
			{1, 0, true, 30 * time.Second, false},
			{1, 0, true, 30 * time.Second, false},
		}},
		{"a healthy run resets the backoff", supervision{restart: "always", restartWindow: time.Hour, restartDelay: BackoffMin}, []step{
			{1, 0, true, 100 * time.Millisecond, false},
			{1, 0, true, 200 * time.Millisecond, false},
			{0, 2 * time.Minute, true, 100 * time.Millisecond, false},
		}},
		// README: a run of 60 s resets the backoff; one just shorter does not.
		{"a run of 60 s resets the backoff, 59.999 s does not", supervision{restart: "always", restartWindow: time.Hour, restartDelay: BackoffMin}, []step{
			{1, 0, true, 100 * time.Millisecond, false},
			{1, 0, true, 200 * time.Millisecond, false},
			{1, HealthyAfter - time.Millisecond, true, 400 * time.Millisecond, false},
			{1, 60 * time.Second, true, 100 * time.Millisecond, false},
		}},
		{"restart_delay 0 restarts at once, every time", supervision{restart: "always", restartWindow: time.Hour}, []step{
			{1, 0, true, 0, false},
			{1, 0, true, 0, false},
			{0, 2 * time.Minute, true, 0, false},
			{1, 0, true, 0, false},
		}},
		{"restart_delay is the first delay", supervision{restart: "always", restartWindow: time.Hour, restartDelay: 20 * time.Second}, []step{
			{1, 0, true, 20 * time.Second, false},
			{1, 0, true, 30 * time.Second, false},
			{1, 0, true, 30 * time.Second, false},
		}},
		{"max_restarts gives up", supervision{restart: "always", maxRestarts: 3, restartWindow: time.Hour, restartDelay: BackoffMin}, []step{
			{1, 0, true, 100 * time.Millisecond, false},
			{1, 0, true, 200 * time.Millisecond, false},
			{1, 0, true, 400 * time.Millisecond, false},
			{1, 0, false, 0, true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Unix(1000, 0)}
			p := newRestartPolicy(tc.sup)
			for i, s := range tc.steps {
				now := clock.advance(s.ran + time.Millisecond)
				d := p.onExit(s.status, s.ran, now)
				if d.restart != s.restart || d.delay != s.delay || d.failed != s.failed {
					t.Fatalf("step %d: got %+v, want restart=%v delay=%s failed=%v", i, d, s.restart, s.delay, s.failed)
				}
				clock.advance(d.delay)
			}
		})
	}
}

// TestRestartWindow checks that restarts older than the window no longer
// count towards max_restarts.
func TestRestartWindow(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	p := newRestartPolicy(supervision{restart: "always", maxRestarts: 2, restartWindow: time.Minute})
	for i := 0; i < 2; i++ {
		if d := p.onExit(1, time.Second, clock.advance(time.Second)); !d.restart {
			t.Fatalf("restart %d refused: %+v", i, d)
		}
	}
	if d := p.onExit(1, time.Second, clock.advance(time.Second)); !d.failed || !strings.Contains(d.reason, "giving up") {
		t.Fatalf("third restart within the window: %+v", d)
	}
	p2 := newRestartPolicy(supervision{restart: "always", maxRestarts: 2, restartWindow: time.Minute})
	p2.onExit(1, time.Second, clock.advance(time.Second))
	p2.onExit(1, time.Second, clock.advance(time.Second))
	if d := p2.onExit(1, time.Second, clock.advance(2*time.Minute)); !d.restart {
		t.Fatalf("restart after the window passed: %+v", d)
	}
}

// TestRestartHistoryBounded checks that a container restarting for ever
// does not grow its policy's memory: without max_restarts no restart time
// is kept, with it at most max_restarts (in an array append grew to
// at most twice that), however many fall in the window.
func TestRestartHistoryBounded(t *testing.T) {
	for _, max := range []int{0, 1, 5} {
		clock := &fakeClock{now: time.Unix(1000, 0)}
		p := newRestartPolicy(supervision{restart: "always", maxRestarts: max, restartWindow: time.Hour})
		for i := 0; i < 10000; i++ {
			d := p.onExit(1, 0, clock.advance(time.Hour/9000))
			if max > 0 && d.failed {
				p.reset() // the operator starts it again
			}
		}
		if len(p.restarts) > max || cap(p.restarts) > 2*max { // append's growth
			t.Errorf("max_restarts = %d: %d restart times kept (capacity %d) after 10000 restarts", max, len(p.restarts), cap(p.restarts))
		}
	}
}
