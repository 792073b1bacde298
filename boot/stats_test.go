package boot

import (
	"testing"
	"time"

	"berth/container"
)

// TestCPUSample follows one unit's CPU samples through a run, a burst of
// requests, a counter going back and a restart: each figure is the CPU
// time used over the interval since the previous sample, in percent of one
// CPU, over at least minCPUInterval.
func TestCPUSample(t *testing.T) {
	t0 := time.Now()
	run1 := &container.Container{Started: t0}
	run2 := &container.Container{Started: t0.Add(10 * time.Second)}
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	steps := []struct {
		name     string
		c        *container.Container
		usec     int64
		now      time.Time
		percent  float64 // -1: none
		interval float64
	}{
		{"too soon after the start", run1, 50_000, at(100), -1, 0},
		{"first sample: since the start", run1, 500_000, at(1000), 50, 1},
		{"a full CPU for a second", run1, 1_500_000, at(2000), 100, 1},
		{"a burst of requests gets the same figure", run1, 1_510_000, at(2050), 100, 1},
		{"two CPUs over half a second", run1, 2_500_000, at(2500), 200, 0.5},
		{"idle", run1, 2_500_000, at(4500), 0, 2},
		{"a counter going back starts over from the start", run1, 1000, at(5000), 0.02, 5},
		{"a restart starts over", run2, 250_000, at(10_500), 50, 0.5},
	}
	var s cpuSample
	for _, st := range steps {
		pct, interval := s.next(st.c, st.usec, st.now)
		switch {
		case st.percent < 0 && pct != nil:
			t.Errorf("%s: got %.2f%%, want none", st.name, *pct)
		case st.percent >= 0 && pct == nil:
			t.Errorf("%s: got none, want %.2f%% over %vs", st.name, st.percent, st.interval)
		case st.percent >= 0 && (!near(*pct, st.percent) || !near(interval, st.interval)):
			t.Errorf("%s: got %.2f%% over %vs, want %.2f%% over %vs", st.name, *pct, interval, st.percent, st.interval)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
