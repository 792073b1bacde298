package boot

import (
	"fmt"
	"time"
)

// Backoff between restarts: it starts at the container's restart_delay
// (BackoffMin by default), doubles with each restart and is capped at
// BackoffMax; a run of HealthyAfter or longer resets it.
const (
	BackoffMin   = 100 * time.Millisecond
	BackoffMax   = 30 * time.Second
	HealthyAfter = 60 * time.Second
)

// decision is what the restart policy makes of an exit.
type decision struct {
	restart bool
	delay   time.Duration
	failed  bool   // gave up: the container stays down
	reason  string // for the event log
}

// restartPolicy tracks one container's restarts. It holds no clock: every
// call gets the time, so tests drive it with a fake one. Its memory does
// not grow with the restarts: it keeps the times of at most max_restarts
// of them (none without a limit), all max_restarts needs to decide.
type restartPolicy struct {
	mode        string // never, on-failure, always
	maxRestarts int
	window      time.Duration
	first       time.Duration // restart_delay
	backoff     time.Duration
	started     bool        // backoff holds a delay already given
	count       int         // restarts since the last reset, for the log
	restarts    []time.Time // the last max_restarts restarts within the window, oldest first
}

func newRestartPolicy(s supervision) *restartPolicy {
	return &restartPolicy{mode: s.restart, maxRestarts: s.maxRestarts, window: s.restartWindow, first: s.restartDelay}
}

// onExit decides what follows an exit with status after a run of ran.
func (p *restartPolicy) onExit(status int, ran time.Duration, now time.Time) decision {
	switch {
	case p.mode == "never":
		return decision{failed: status != 0, reason: "restart = never"}
	case p.mode == "on-failure" && status == 0:
		return decision{reason: "exited 0; restart = on-failure"}
	}
	if p.maxRestarts > 0 {
		// Forget restarts that left the window.
		kept := p.restarts[:0]
		for _, t := range p.restarts {
			if now.Sub(t) < p.window {
				kept = append(kept, t)
			}
		}
		p.restarts = kept
		if len(p.restarts) >= p.maxRestarts {
			return decision{failed: true, reason: fmt.Sprintf("restarted %d times within %s (max_restarts = %d): giving up", len(p.restarts), p.window, p.maxRestarts)}
		}
		p.restarts = append(p.restarts, now)
	}
	switch {
	case ran >= HealthyAfter || !p.started:
		p.backoff, p.started = p.first, true
	default:
		p.backoff = min(2*p.backoff, BackoffMax)
	}
	p.count++
	return decision{restart: true, delay: p.backoff,
		reason: fmt.Sprintf("restart %d in %s (restart = %s)", p.count, p.backoff, p.mode)}
}

// reset forgets the history: a start asked for by the operator.
func (p *restartPolicy) reset() {
	p.backoff, p.started, p.count = 0, false, 0
	p.restarts = p.restarts[:0]
}
