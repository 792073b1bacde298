package boot

import (
	"strings"
	"sync"
	"time"

	"berth/container"
)

// Health checks ([container.health]). While a container runs, a
// goroutine of its own (health_check.go) runs its check in it, as berth
// exec would, one check at a time, every interval; the supervisor loop
// only starts and stops that goroutine and, with on_unhealthy =
// "restart", hears from it when the container turns unhealthy. A check
// that hangs, floods its output or cannot start costs that goroutine a
// timeout, never the loop.

// Health is a container's health as its check finds it: docker's
// states, and HealthNone for a container without a check.
type Health string

// The health states.
const (
	HealthNone      Health = "none"      // no [container.health]
	HealthStarting  Health = "starting"  // no check has passed since the start
	HealthHealthy   Health = "healthy"   // the last check passed, or fewer than retries failed since
	HealthUnhealthy Health = "unhealthy" // retries checks in a row failed
)

// HealthInfo is a container's health as berth status shows it. Running
// says whether the container runs (and its checks with it); when it
// does not, the rest is what its last run's checks found.
type HealthInfo struct {
	Container     string `json:"container"`
	Health        Health `json:"health"`
	Running       bool   `json:"running"`
	FailingStreak int    `json:"failing_streak"`
	// LastCheck is when the last check started; LastExitCode its status
	// (128+N for signal N, 137 when killed at the timeout or when an
	// interval passed while the killed check had not exited yet, 125-127
	// when it could not start); LastOutput the end of what it wrote, at
	// most maxHealthOutput bytes, or why it could not start.
	LastCheck    *time.Time `json:"last_check,omitempty"`
	LastExitCode *int       `json:"last_exit_code,omitempty"`
	LastOutput   string     `json:"last_output,omitempty"`
	// PreviousRun is set while the container runs and its last check is
	// its previous run's: none has run in this one yet.
	PreviousRun bool `json:"previous_run,omitempty"`
}

// nextHealth is docker's rule: a check that passes makes the container
// healthy and ends the failing streak; one that fails adds to the
// streak, and retries failures in a row make it unhealthy; but while the
// container is still starting, a failed check that began within
// start_period does not count.
func nextHealth(cur Health, streak int, ok, inStartPeriod bool, retries int) (Health, int) {
	switch {
	case ok:
		return HealthHealthy, 0
	case cur == HealthStarting && inStartPeriod:
		return cur, streak
	case streak+1 >= retries:
		return HealthUnhealthy, streak + 1
	}
	return cur, streak + 1
}

// healthState is one container's health. Its info is read and changed
// under mu, from the loop and the checker; changed is closed, and
// replaced, at each change of Health or Running.
type healthState struct {
	mu      sync.Mutex
	info    HealthInfo
	changed chan struct{}
	// run numbers the container's runs: each start and each stop begins
	// a new one, so a checker's result that comes after its run ended
	// is dropped (updateRun).
	run uint64

	// Loop only: stop ends the current run's checker (nil when none
	// runs); restarting is set while the loop stops the container as
	// unhealthy, lastRestart when its last run ended so.
	stop                    chan struct{}
	restarting, lastRestart bool
}

func newHealthState(name string, hc *healthCheck) *healthState {
	h := &healthState{info: HealthInfo{Container: name, Health: HealthNone}, changed: make(chan struct{})}
	if hc != nil {
		h.info.Health = HealthStarting
	}
	return h
}

// watch returns the health now and a channel closed at its next change
// (of Health or Running). Safe from any goroutine: a waiter takes the
// unit's healthState on the loop, then waits off it, e.g.
//
//	for {
//		info, changed := h.watch()
//		if info.Running && info.Health == HealthHealthy { break }
//		select { case <-changed: case <-deadline: ... }
//	}
func (h *healthState) watch() (HealthInfo, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.info, h.changed
}

// update changes the info with f and wakes the watchers when Health or
// Running changed. It returns the health before and after.
func (h *healthState) update(f func(*HealthInfo)) (from, to Health) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.apply(f)
}

// apply is update with h.mu held.
func (h *healthState) apply(f func(*HealthInfo)) (from, to Health) {
	before := h.info
	f(&h.info)
	if h.info.Health != before.Health || h.info.Running != before.Running {
		close(h.changed)
		h.changed = make(chan struct{})
	}
	return before.Health, h.info.Health
}

// newRun begins a new run and returns its number.
func (h *healthState) newRun() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.run++
	return h.run
}

// updateRun is update for the checker of run: ok is false, and nothing
// changes, once that run has ended.
func (h *healthState) updateRun(run uint64, f func(*HealthInfo)) (from, to Health, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.run != run {
		return "", "", false
	}
	from, to = h.apply(f)
	return from, to, true
}

// healthEvent tells the loop that the container c of u turned unhealthy.
type healthEvent struct {
	u *unit
	c *container.Container
}

// startHealth starts the checks of u's container c, just started: its
// health starts over.
func (s *supervisor) startHealth(u *unit, c *container.Container) {
	hc := u.sup.health
	u.health.update(func(i *HealthInfo) {
		i.Running = true
		if hc != nil {
			i.Health, i.FailingStreak = HealthStarting, 0
		}
	})
	run := u.health.newRun()
	if hc == nil {
		return
	}
	stop := make(chan struct{})
	u.health.stop = stop
	started := u.started
	s.b.goSafe(func() { s.runChecks(u, c, started, run, stop) })
}

// stopHealth ends u's checks: its container is stopping or has ended.
func (s *supervisor) stopHealth(u *unit) {
	if u.health.stop != nil {
		close(u.health.stop)
		u.health.stop = nil
	}
	u.health.newRun() // the checker's last result, if it comes, is dropped
	u.health.update(func(i *HealthInfo) { i.Running = false })
}

// unhealthy handles a healthEvent on the loop: with on_unhealthy =
// "restart", the container is stopped as usual (stop_signal, then
// SIGKILL after stop_timeout), and its exit counts as a failure
// (exitedUnhealthy). An event about a run that has ended since, or a
// unit a reload replaced, is dropped.
func (s *supervisor) unhealthy(ev healthEvent) {
	u := ev.u
	if s.units[u.name] != u || u.c != ev.c || u.state != stateRunning || s.draining {
		return
	}
	info, _ := u.health.watch()
	s.b.log.Printf("container %s is unhealthy (%d failed checks in a row): restarting it (on_unhealthy = \"restart\")", u.name, info.FailingStreak)
	s.stop(u, u.sup.stopTimeout)
	u.health.restarting = true
}

// exitedUnhealthy reports whether u's container, which has exited, was
// stopped as unhealthy; then its exit goes to the restart policy as a
// failure, whatever its status (a workload that exits 0 on SIGTERM was
// still unhealthy). A stop or restart asked for meanwhile went through
// supervisor.stop, which cleared restarting: it wins.
func (s *supervisor) exitedUnhealthy(u *unit, exit container.Exit) bool {
	stopped := u.state == stateStopping && u.health.restarting
	u.health.restarting, u.health.lastRestart = false, stopped
	if !stopped {
		return false
	}
	s.b.log.Printf("container %s stopped as unhealthy", u.name)
	s.afterExit(u, max(exit.Status(), 1), exit.Runtime)
	return true
}

// healthInfo lists the health of the containers that have a check.
func (s *supervisor) healthInfo() []HealthInfo {
	var out []HealthInfo
	for _, name := range s.order {
		if u := s.units[name]; u.sup.health != nil {
			info, _ := u.health.watch()
			info.PreviousRun = info.Running && info.LastCheck != nil && info.LastCheck.Before(u.started)
			out = append(out, info)
		}
	}
	return out
}

// describeHealth is ps's HEALTH of u: its health while it runs and has
// a check, else empty.
func (u *unit) describeHealth() string {
	info, _ := u.health.watch()
	if u.sup.health == nil || !info.Running {
		return ""
	}
	return string(info.Health)
}

// maxHealthOutput bounds the output kept of a check: the last bytes it
// wrote.
const maxHealthOutput = 4 << 10

// cutOutput is a check's output as the log shows it: ": " and its last
// line, quoted and cut; nothing when it wrote nothing.
func cutOutput(out string) string {
	out = strings.TrimRight(out, "\n")
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	if out == "" {
		return ""
	}
	return ": " + container.Quote(out)
}
