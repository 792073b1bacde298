package boot

import (
	"fmt"
	"strings"
	"time"

	"berth/container"
)

// minCPUInterval is the shortest interval berth computes a container's CPU
// use over: a request sooner after the last sample gets that sample's
// figure again, so that clients polling berth ps do not turn the figure
// into noise.
const minCPUInterval = 200 * time.Millisecond

// cpuSample is the last reading of a unit's CPU time, which the next one
// is compared with, and the figure computed when it was taken.
type cpuSample struct {
	c        *container.Container // the run it belongs to
	usec     int64
	at       time.Time
	percent  *float64
	interval time.Duration
}

// next records c's CPU time usec, read at now, and returns its CPU use
// since the previous reading, in percent of one CPU, and the interval.
// The first reading of a run is compared with its start: its cgroup was
// made, with no CPU time, just before.
func (p *cpuSample) next(c *container.Container, usec int64, now time.Time) (*float64, float64) {
	if p.c != c || usec < p.usec {
		*p = cpuSample{c: c, at: c.Started}
	}
	d := now.Sub(p.at)
	if d < minCPUInterval {
		return p.percent, p.interval.Seconds()
	}
	pct := float64(usec-p.usec) / (float64(d) / float64(time.Microsecond)) * 100
	*p = cpuSample{c: c, usec: usec, at: now, percent: &pct, interval: d}
	return &pct, d.Seconds()
}

// readStats returns the resource use of u's running container, nil when
// it does not run.
func (u *unit) readStats(now time.Time) *Stats {
	if u.c == nil {
		return nil
	}
	cs, err := u.c.Stats()
	st := &Stats{Stats: cs}
	if err != nil {
		st.Error = err.Error()
	}
	if cs.CPUUsec != nil {
		st.CPUPercent, st.CPUIntervalSec = u.cpu.next(u.c, *cs.CPUUsec, now)
	}
	return st
}

// stats is berth stats: the named containers, or every running one.
func (s *supervisor) stats(names []string) ([]ContainerStats, error) {
	if len(names) == 0 {
		for _, name := range s.order {
			if s.units[name].c != nil {
				names = append(names, name)
			}
		}
	}
	if err := s.checkStatsNames(names); err != nil {
		return nil, err
	}
	now := time.Now()
	var rows []ContainerStats
	for _, name := range names {
		u := s.units[name]
		rows = append(rows, ContainerStats{Name: name, State: string(u.state), Stats: u.readStats(now)})
	}
	return rows, nil
}

// checkStatsNames refuses the names of a stats request when one is not a
// container's, or names one twice, or when there are more of them than
// containers: each name costs the supervisor loop a read of its
// container's cgroup files and the answer a row, and a request of 64 KiB
// holds ~7,000 copies of a short one.
func (s *supervisor) checkStatsNames(names []string) error {
	if len(names) > len(s.units) {
		return fmt.Errorf("%d names, more than there are containers (%s): name each once at most", len(names), strings.Join(s.order, ", "))
	}
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		switch {
		case s.units[name] == nil:
			return fmt.Errorf("no container %s (containers: %s)", container.Quote(name), strings.Join(s.order, ", "))
		case seen[name]:
			return fmt.Errorf("container %s is named twice: name each once at most", container.Quote(name))
		}
		seen[name] = true
	}
	return nil
}
