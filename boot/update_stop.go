package boot

import (
	"context"
	"strings"
	"time"
)

// A switch's stops. The containers a switch replaces or removes are
// stopped before it, from the update's goroutine: in rounds, dependents
// first, each round's stop signals sent at once and their exits awaited
// off the loop (waitOffLoop), which meanwhile reaps, answers, takes
// SIGTERM and sends SIGKILL when a stop timeout passes. switchTo then
// finds them stopped. While it waits, a container being replaced is not
// started again: its restart policy, berth start and berth restart wait
// for the new definition; berth stop -t 0 hurries it.

// stopForSwitch stops, off the loop, the running containers that the
// switch by p replaces or removes, and marks them replacing. The switch
// takes the same p. errShutdown when the loop ends first.
func (s *supervisor) stopForSwitch(up *update, p plan) error {
	done := map[string]bool{}
	for {
		var round []string
		var giveUp time.Time
		if !s.onLoop(func() { round, giveUp = s.replacedRound(p, done) }) {
			return errShutdown
		}
		if len(round) == 0 {
			return nil
		}
		start := time.Now()
		err := s.waitOffLoop(context.Background(), up, strings.Join(round, ", ")+" to stop", func() bool {
			return s.roundStopped(round) || !time.Now().Before(giveUp)
		})
		if err != nil {
			return err
		}
		if !s.onLoop(func() { s.endRound(round, start) }) {
			return errShutdown
		}
		for _, name := range round {
			done[name] = true
		}
	}
}

// stopReplaced is stopForSwitch for a switch to cfg whose plan is made
// now, on the loop (a rollback's); it returns the plan for the switch.
func (s *supervisor) stopReplaced(up *update, cfg *Config) (plan, error) {
	var p plan
	if !s.onLoop(func() { p = s.diff(cfg) }) {
		return p, errShutdown
	}
	return p, s.stopForSwitch(up, p)
}

// replacedRound, on the loop, marks the containers the switch by p
// replaces or removes, keeps those not running from starting, and stops
// the next round: the running ones no running one of them (not yet
// waited for, done) comes after. It returns their names and when to stop
// waiting for them: the last stop timeout and a grace period.
func (s *supervisor) replacedRound(p plan, done map[string]bool) ([]string, time.Time) {
	going := map[string]bool{}
	for _, name := range append(append([]string{}, p.changed...), p.removed...) {
		going[name] = true
		u := s.units[name]
		u.replacing, u.thenStart = true, false
		if u.state == stateBackoff || u.state == stateWaiting {
			u.state = stateStopped
		}
	}
	up := func(u *unit) bool { return u.state == stateRunning || u.state == stateStopping }
	var round []string
	giveUp := time.Now()
	for _, name := range stopOrder(s.order, s.units) {
		u := s.units[name]
		if !going[name] || done[name] || !up(u) {
			continue
		}
		needed := false
		for other := range going {
			if v := s.units[other]; !done[other] && up(v) && s.comesAfter(v, name, map[string]bool{}) {
				needed = true
				break
			}
		}
		if needed {
			continue
		}
		s.stop(u, u.sup.stopTimeout)
		giveUp = maxTime(giveUp, u.stopDeadline.Add(5*time.Second))
		round = append(round, name)
	}
	return round, giveUp
}

// roundStopped reports, on the loop, whether every container of round
// has stopped.
func (s *supervisor) roundStopped(round []string) bool {
	for _, name := range round {
		if u := s.units[name]; u.state == stateRunning || u.state == stateStopping {
			return false
		}
	}
	return true
}

// endRound logs, on the loop, how the round's stops went; the switch
// replaces one that did not stop without waiting for it again.
func (s *supervisor) endRound(round []string, start time.Time) {
	for _, name := range round {
		u := s.units[name]
		if u.stopGivenUp() {
			s.b.log.Printf("container %s did not stop: the switch replaces it anyway", name)
			continue
		}
		s.b.log.Printf("container %s stopped in %s", name, time.Since(start).Round(time.Millisecond))
	}
}

// stopGivenUp reports whether u, replaced, is still up after its round
// of stopForSwitch: nothing starts a replaced container again, so one
// still up was given up on, and the switch does not wait for it again.
func (u *unit) stopGivenUp() bool {
	return u.replacing && (u.state == stateRunning || u.state == stateStopping)
}

// replacingMsg refuses a start or restart of a container an update is
// replacing.
func replacingMsg(u *unit) string {
	return "container " + u.name + " is being replaced by an update: its new definition starts after the switch (berth status)"
}

// replacedExit keeps a container an update replaces stopped when it
// exits by itself while it waits for its round: its restart policy is
// not applied. It reports whether it did.
func (s *supervisor) replacedExit(u *unit) bool {
	if !u.replacing || u.state == stateStopping {
		return false
	}
	u.state = stateStopped
	s.b.log.Printf("container %s: not restarted: an update replaces it", u.name)
	return true
}
