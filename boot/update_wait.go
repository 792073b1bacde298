package boot

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// An update's waits. The loop must stay short (reaping, starting,
// answering, SIGTERM), so an update never waits on it: it asks the loop
// from its own goroutine, a call at a time (waitOffLoop), for the boot's
// images (waitBootImages) and for the pulls it cancels before a switch
// (endPulls). Phase 1 of an apply or reload runs under the update's
// context, which its client's hang-up or the loop's end cancels.

// context is the update's phase-1 context: Background when it has none.
func (up *update) context() context.Context {
	if up == nil || up.ctx == nil {
		return context.Background()
	}
	return up.ctx
}

// errClientGone ends phase 1 of an update whose client hung up.
var errClientGone = errors.New("cancelled: the client that asked for it hung up")

// cancelled is why phase 1 ended early: the client hung up, or berth is
// shutting down.
func (s *supervisor) cancelled() error {
	select {
	case <-s.loopDone:
		return errShutdown
	default:
		return errClientGone
	}
}

// notef sends one step of the update to the client that asked for them
// (Request.Progress), before its answer; nothing otherwise. A nil update
// takes none.
func (up *update) notef(format string, args ...any) {
	if up == nil || up.reply == nil || !up.progress {
		return
	}
	up.reply <- reply{Response: Response{Progress: fmt.Sprintf(format, args...)}}
}

// offLoopPoll is how often waitOffLoop asks the loop whether what it
// waits for has come.
const offLoopPoll = 20 * time.Millisecond

// waitOffLoop waits, on an update's goroutine, until done (run on the
// loop) reports true, telling the client once what it waits for; the
// loop goes on meanwhile. errShutdown when the loop has ended.
func (s *supervisor) waitOffLoop(ctx context.Context, up *update, what string, done func() bool) error {
	told := false
	for {
		var ok bool
		if !s.onLoop(func() { ok = done() }) {
			return errShutdown
		}
		if !ok && ctx.Err() != nil {
			return s.cancelled()
		}
		if ok {
			return nil
		}
		if !told {
			up.notef("waiting for %s", what)
			told = true
		}
		select {
		case <-time.After(offLoopPoll):
		case <-ctx.Done():
		case <-s.loopDone:
			return errShutdown
		}
	}
}

// endPulls cancels the registry pulls under way and waits, off the loop,
// until they have ended: their units are about to be replaced (a unit
// still preparing is never kept, diff), and the switch must not release
// what a pull still uses. A pull waiting for its registry ends at once,
// an unpack under way finishes first; the loop takes their last words
// (pullDone).
func (s *supervisor) endPulls(up *update) error {
	if !s.onLoop(func() {
		if s.pending > 0 {
			s.pullCancel()
		}
	}) {
		return errShutdown
	}
	return s.waitOffLoop(context.Background(), up, "the registry pulls under way to end", func() bool { return s.pending == 0 })
}

// waitBootImages waits, off the loop, until the image goroutine (the
// boot's, or the last switch's) has ended and the loop has taken what it
// readied.
func (s *supervisor) waitBootImages(ctx context.Context, up *update) error {
	what := "the boot's images to be ready"
	if !s.onLoop(func() {
		if s.images != nil && !s.imagesBoot {
			what = "the last switch's images to be ready"
		}
	}) {
		return errShutdown
	}
	return s.waitOffLoop(ctx, up, what, func() bool { return s.images == nil })
}

// readyToSwitch waits, off the loop, until switchTo would wait for
// nothing: the boot's images all taken, the pulls under way ended
// (endPulls). Every update calls it before it switches.
func (s *supervisor) readyToSwitch(up *update) error {
	if err := s.waitBootImages(context.Background(), up); err != nil {
		return err
	}
	return s.endPulls(up)
}
