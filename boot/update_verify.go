package boot

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// An update's check: each changed container ready (healthy, up for the
// grace period, or a oneshot's exit 0) before its generation is
// committed.

// verify waits until each named container of cfg is ready (waitReady,
// with grace), in start order; the first that is not fails the
// generation.
func (s *supervisor) verify(up *update, cfg *Config, names []string, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace+startTimeout)
	defer cancel()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var order []string
	if !s.onLoop(func() { order = startOrder(s.order, s.units) }) {
		return errShutdown
	}
	for _, name := range order {
		if want[name] {
			up.notef("container %s: waiting until it is ready (%s)", name, readyMeans(grace))
			start := time.Now()
			if err := s.waitReady(ctx, name, grace); err != nil {
				return fmt.Errorf("container %s: %w", name, err)
			}
			up.notef("container %s: ready (%s)", name, since(start))
		}
	}
	return nil
}

// readyMeans says what ready is for a container waited on with grace:
// healthy by its check, a oneshot's status 0, or up for grace.
func readyMeans(grace time.Duration) string {
	if grace <= 0 {
		return "running, healthy or, for a oneshot, exited 0"
	}
	return fmt.Sprintf("healthy, or up for %s; a oneshot: exited 0", grace)
}

// startTimeout bounds how long a changed container may take to start
// (its dependencies, its image, the network) before its grace period,
// and a oneshot to exit 0: past it the generation fails.
const startTimeout = 2 * time.Minute

// unitView is what waitReady looks at, copied on the loop.
type unitView struct {
	found           bool
	state           unitState
	oneshot         bool
	pid, restarts   int
	status          int
	detail, blocked string
	health          Health // HealthNone without a check
}

// view copies what waitReady needs of the unit called name.
func (s *supervisor) view(name string) unitView {
	u := s.units[name]
	if u == nil {
		return unitView{}
	}
	v := unitView{found: true, state: u.state, oneshot: u.sup.oneshot, restarts: u.restarts, status: u.lastStatus(), detail: u.describeState()}
	if u.c != nil {
		v.pid = u.c.Pid
	}
	v.health = HealthNone
	if u.health != nil {
		info, _ := u.health.watch()
		v.health = info.Health
	}
	if u.state == stateWaiting {
		if _, blocked, reason := s.readiness(u); blocked {
			v.blocked = reason
		}
	}
	return v
}

// waitReady waits until the container called name is ready: it has a
// health check and is healthy, or — without one — it stays up for grace
// from its start (running, the same process, never restarted), or a
// oneshot exits 0. It fails as soon as the container exits, restarts,
// cannot start, or ctx ends.
func (s *supervisor) waitReady(ctx context.Context, name string, grace time.Duration) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var up time.Time // when it was first seen running
	var pid, restarts int
	for {
		var v unitView
		if !s.onLoop(func() { v = s.view(name) }) {
			return errShutdown
		}
		switch {
		case !v.found:
			return errors.New("is not in the config")
		case v.oneshot && v.state == stateExited && v.status == 0:
			return nil
		case v.state == stateRunning && up.IsZero():
			up, pid, restarts = time.Now(), v.pid, v.restarts
		case v.state == stateRunning && (v.pid != pid || v.restarts != restarts):
			if v.health != HealthNone {
				return errors.New("restarted before its health check passed")
			}
			return fmt.Errorf("restarted within its grace period of %s", grace)
		case v.state == stateRunning && v.health == HealthUnhealthy:
			return errors.New("is unhealthy: its health check failed")
		case v.state == stateRunning && v.health == HealthHealthy:
			return nil
		case v.state == stateRunning && !v.oneshot && v.health == HealthNone && time.Since(up) >= grace:
			return nil
		case v.state == stateWaiting && v.blocked != "":
			return fmt.Errorf("cannot start: %s", v.blocked)
		case v.state == stateBackoff:
			return fmt.Errorf("exited with status %d and is restarting", v.status)
		case v.state != stateRunning && v.state != stateWaiting:
			return fmt.Errorf("is %s", v.detail)
		}
		select {
		case <-ctx.Done():
			if up.IsZero() {
				return fmt.Errorf("did not start within %s", startTimeout)
			}
			if v.health != HealthNone {
				return fmt.Errorf("did not become healthy within %s", grace+startTimeout)
			}
			return fmt.Errorf("oneshot did not finish within %s", grace+startTimeout)
		case <-tick.C:
		}
	}
}
