package boot

import (
	"strings"
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

// TestStatsNames: berth stats names each container once at most, and
// no more containers than there are: a request with a name repeated
// (~7,000 times in 64 KiB) read the cgroup files once per copy on the
// supervisor loop and answered megabytes. Such a request is refused,
// naming the problem; one of distinct names gets a row each.
func TestStatsNames(t *testing.T) {
	s := &supervisor{units: map[string]*unit{}}
	for _, name := range []string{"fixlb-db", "fixlb-web"} {
		s.units[name] = &unit{name: name, state: stateExited}
		s.order = append(s.order, name)
	}
	many := make([]string, 7000)
	for i := range many {
		many[i] = "fixlb-web"
	}
	for _, tc := range []struct {
		names []string
		want  string // the error; empty: a row per name
	}{
		{[]string{"fixlb-web", "fixlb-db"}, ""},
		{[]string{"fixlb-web"}, ""},
		{[]string{"fixlb-web", "fixlb-web"}, `container "fixlb-web" is named twice`},
		{[]string{"fixlb-web", "fixlb-db", "fixlb-web"}, "3 names, more than there are containers"},
		{many, "7000 names, more than there are containers"},
		{[]string{"fixlb-web", "fixlb-nope"}, `no container "fixlb-nope"`},
	} {
		r := request{Request: Request{Verb: "stats", Names: tc.names}, reply: make(chan reply, 1)}
		s.handle(r)
		rep := <-r.reply
		switch {
		case tc.want == "" && (rep.Error != "" || len(rep.Stats) != len(tc.names)):
			t.Errorf("%d names: %q, %d rows; want a row each", len(tc.names), rep.Error, len(rep.Stats))
		case tc.want != "" && (!strings.Contains(rep.Error, tc.want) || rep.Stats != nil):
			t.Errorf("%d names: %q, %d rows; want %q", len(tc.names), rep.Error, len(rep.Stats), tc.want)
		}
	}
}
