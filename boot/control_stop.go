package boot

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// waiter is a control request whose answer waits for a container: berth
// stop until it has stopped, berth restart until it has started again.
type waiter struct {
	verb  string
	reply chan reply
	gone  <-chan struct{} // closed once its client has hung up
}

// left reports whether w's client has hung up: nothing reads its answer.
func (w waiter) left() bool {
	select {
	case <-w.gone:
		return true
	default:
		return false
	}
}

// MaxStopSeconds is the longest stop timeout a request may give, in
// seconds: the longest time.Duration (292 years). Past it the seconds
// would wrap around to a deadline already passed, an immediate SIGKILL.
const MaxStopSeconds = int64(math.MaxInt64 / time.Second)

// stopRequest handles stop and restart. The answer is sent when the
// container has stopped (stop) or been started again (restart), so that
// `berth stop web && berth start web` works.
func (s *supervisor) stopRequest(u *unit, r request) {
	timeout := u.sup.stopTimeout
	if r.Timeout != nil {
		if *r.Timeout < 0 || *r.Timeout > MaxStopSeconds {
			r.reply <- reply{Response: Response{Error: fmt.Sprintf("timeout %d: want 0 to %d seconds", *r.Timeout, MaxStopSeconds)}}
			return
		}
		timeout = time.Duration(*r.Timeout) * time.Second
	}
	running := u.state == stateRunning || u.state == stateStopping
	if r.Verb == "stop" && !running {
		msg := u.name + " is not running (" + u.describeState() + ")"
		if u.state == stateBackoff || u.state == stateWaiting {
			s.stop(u, timeout) // it would start: now it stays stopped
			msg = "stopped " + u.name + " before it started"
			u.answer("restart", true, u.name+": the restart was cancelled by a stop")
		}
		r.reply <- reply{Response: Response{Message: msg}}
		return
	}
	// The waiters whose clients left are forgotten: a client retrying
	// berth stop with a short timeout of its own would grow the list for
	// as long as the container takes to stop (review).
	u.waiters = slices.DeleteFunc(u.waiters, waiter.left)
	u.waiters = append(u.waiters, waiter{verb: r.Verb, reply: r.reply, gone: r.gone})
	if r.Verb == "restart" && !running {
		u.policy.reset()
		u.state, u.waitReason = stateWaiting, ""
		return
	}
	// The last request wins: a stop during a restart's stop cancels the
	// start that was to follow, and says so to the restart's client.
	if r.Verb == "stop" && u.thenStart {
		u.answer("restart", true, u.name+": the restart was cancelled by a stop")
	}
	u.thenStart = r.Verb == "restart"
	s.stop(u, timeout)
}

// answer sends msg (or, with failed, an error) to the unit's waiters for
// verb, and forgets them.
func (u *unit) answer(verb string, failed bool, msg string) {
	kept := u.waiters[:0]
	for _, w := range u.waiters {
		if w.verb != verb {
			kept = append(kept, w)
			continue
		}
		resp := Response{Message: msg}
		if failed {
			resp = Response{Error: msg}
		}
		w.reply <- reply{Response: resp}
	}
	u.waiters = kept
}

// answerAll fails every waiter of the unit: it is going away.
func (u *unit) answerAll(why string) {
	for _, verb := range []string{"stop", "restart"} {
		u.answer(verb, true, u.name+": "+why)
	}
}
