package boot

import "time"

// stopLookEvery is how often a stopping container whose first process
// had no handler for its stop signal is looked at again.
const stopLookEvery = 100 * time.Millisecond

// stopSent follows a stop signal just sent to u. The kernel drops a
// signal other than SIGKILL that is sent to a PID namespace's init with
// no handler for it, and the container's first process is one: a
// workload stopped before it installs its handler (a script before its
// trap; a program still starting) never hears the stop and is killed at
// the timeout. That is logged, and the loop looks again every
// stopLookEvery (resendStop) until the process has a handler, sends the
// signal once more then, or the stop ends (u.stopLook).
func (s *supervisor) stopSent(u *unit, now time.Time) {
	u.stopLook = time.Time{}
	if u.c == nil || !u.stopDeadline.After(now) {
		return // killed at once: nothing to wait for
	}
	handled, err := u.c.Handles(u.sup.stopSignal)
	if err != nil || handled {
		return
	}
	s.b.log.Printf("container %s: its first process has no handler for %s, and the kernel drops such a signal to a PID namespace's init: "+
		"berth sends it again once the process handles it, else SIGKILL after %s",
		u.name, signalName(u.sup.stopSignal), u.stopDeadline.Sub(now).Round(time.Millisecond))
	u.stopLook = now.Add(stopLookEvery)
}

// resendStop sends a stopping unit's stop signal again once its first
// process has a handler for it (see stopSent), and returns when it wants
// to look again: the zero time once it need not.
func (s *supervisor) resendStop(u *unit, now time.Time) time.Time {
	if u.stopLook.IsZero() || u.c == nil {
		return time.Time{}
	}
	if now.Before(u.stopLook) {
		return u.stopLook
	}
	handled, err := u.c.Handles(u.sup.stopSignal)
	if err == nil && !handled {
		u.stopLook = now.Add(stopLookEvery)
		return u.stopLook
	}
	u.stopLook = time.Time{}
	if handled { // else it has ended; the reaper tells the loop
		s.b.log.Printf("container %s: its first process handles %s now: sent again", u.name, signalName(u.sup.stopSignal))
		_ = u.c.Signal(u.sup.stopSignal)
	}
	return time.Time{}
}
