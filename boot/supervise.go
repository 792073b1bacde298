package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"berth/container"
	"berth/image"
)

// supervisor keeps the configured containers running by their restart
// policies and dependencies. It runs on one goroutine: signals, exits
// (through the reaper), control requests, timers and panics of other
// goroutines all arrive as events on its loop, so its state needs no lock.
type supervisor struct {
	b     *booter
	units map[string]*unit
	order []string // config order
	// draining is set once the shutdown has begun: nothing starts.
	draining bool
	// hurry: a second shutdown was asked for while stopAll ran; the
	// containers left are killed at once (hurryUp).
	hurry bool
	// roundEnd is when stopAll stops waiting for the round's
	// containers; a hurry brings it to hurryWait from then.
	roundEnd time.Time
	// outputs counts the goroutines copying container output.
	outputs sync.WaitGroup
	// cache holds the unpacked images (see rootfs.go). While the boot's
	// images are readied (images.go), only their goroutine uses it.
	cache   *image.Cache
	cacheMu sync.Mutex // guards cache and cacheRoots: pulls share it
	// cacheRoots are the roots of every cache opened: the containers a
	// reload kept run from the trees of the one before (ownTrees).
	cacheRoots                 []string
	overlayWarned, idmapWarned atomic.Bool
	// trash takes the containers' released trees (trash.go); nil before
	// the boot's images phase, and in tests: then they are removed in
	// place.
	trash *trash
	// pullEvents brings the registry pulls' news (pull.go); pending
	// counts the pulls under way, which pullCancel cancels. A shutdown
	// that stops waiting for them closes pullsAbandoned.
	pullEvents     chan pullEvent
	pullsAbandoned chan struct{}
	pullCtx        context.Context
	pullCancel     context.CancelFunc
	pending        int
	// images delivers the boot's readied images to the loop, then is
	// closed; nil once all have arrived. Closing imagesStop makes the
	// goroutine stop after the image it is on; imagesAbandon, called when
	// a shutdown stops waiting for it, makes it mount nothing more.
	images        chan imageReady
	imagesStop    chan struct{}
	imagesAbandon context.CancelFunc
	imagesStart   time.Time
	imagesBoot    bool // the images are the boot's, not a switch's
	// imageTaken is the last image's taken (images.go), until the loop
	// has started what it allowed.
	imageTaken chan struct{}
	// net is the bridge network, once a net = "bridge" container needs
	// it (bridge.go).
	net *bridgeNet
	// trim hands free memory back to the kernel after starts and exits.
	trim trimmer
	// healthEvents brings the checkers' news of unhealthy containers
	// (health.go).
	healthEvents chan healthEvent
	// calls runs functions of an update's goroutine on the loop;
	// loopDone is closed once the loop has returned.
	calls    chan func()
	loopDone chan struct{}
}

func newSupervisor(b *booter, cfg *Config) *supervisor {
	s := &supervisor{b: b, units: map[string]*unit{}, healthEvents: make(chan healthEvent), calls: make(chan func()), loopDone: make(chan struct{})}
	own := b.ownTreesOf(cfg)
	for _, cc := range cfg.Container {
		s.units[cc.Name] = newUnit(cc, b.log, own)
		s.order = append(s.order, cc.Name)
	}
	return s
}

// readyRootfs readies cc's root filesystem from its image, unless it has
// volumes and the data partition is not there, and returns it with what
// the image says about running it. It touches no unit: the image
// goroutine and the pulls call it; ctx ends a pull.
func (s *supervisor) readyRootfs(ctx context.Context, cfg *Config, cc ContainerConfig) (rootfs string, ic image.Config, err error) {
	if why := s.volumesMissing(cc); why != "" {
		return "", ic, errors.New(why)
	}
	if rootfs, ic, err = s.prepareRootfs(ctx, cfg, cc); err != nil {
		return "", ic, fmt.Errorf("image: %w", err)
	}
	return rootfs, ic, nil
}

// useImage gives u its root filesystem, and its spec and stop signal
// with the defaults its image says (ContainerConfig.withImage).
func (u *unit) useImage(rootfs string, ic image.Config) error {
	spec, sig, err := u.cfg.withImage(rootfs, ic)
	if err != nil {
		return fmt.Errorf("image %s: %w", u.cfg.Image, err)
	}
	u.spec, u.sup.stopSignal = spec, sig
	return nil
}

// loop runs the containers until every one has ended by itself (power
// off), or a signal or a control request asks for a shutdown. It returns
// the shutdown action and berth boot's exit status.
func (s *supervisor) loop() (Action, int) {
	defer close(s.loopDone)
	timer := time.NewTimer(0)
	defer timer.Stop()
	s.b.reaper.reap() // children that exited before the loop started
	for {
		next := s.schedule(time.Now())
		s.imageHandedOver()
		if s.finished() {
			s.flushOutput()
			s.b.log.Printf("all containers have ended")
			return PowerOff, s.status()
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(time.Until(next))
		select {
		case <-s.b.chld:
			s.b.reaper.reap()
		case sig := <-s.b.sigs:
			switch {
			case sig == syscall.SIGHUP:
				s.b.log.Printf("got SIGHUP: applying the boot config file")
				s.startUpdate(updateReload, nil)
			default:
				if action, ok := shutdownSignal(sig); ok {
					s.b.log.Printf("got %s: shutting down (%s)", sig, action)
					return action, s.status()
				}
			}
		case <-s.b.netChanged: // a container may wait for the network
		case ev := <-s.healthEvents:
			s.unhealthy(ev)
		case r, ok := <-s.images:
			s.imageDone(r, ok)
		case ev := <-s.pullEvents:
			s.pullDone(ev)
		case <-s.b.modulesDone():
			s.b.modulesLoaded()
		case f := <-s.calls: // from an update's goroutine (generation_update.go)
			f()
		case req := <-s.b.requests:
			if action, stop := s.handle(req); stop {
				return action, s.status()
			}
		case <-timer.C:
		case err := <-s.b.fatal:
			s.b.log.Printf("FATAL: %v", err)
			return s.b.panicAction, 1
		}
	}
}

// schedule starts what is due, kills what overstayed its stop timeout,
// pings the watchdog, and returns when it next needs to run.
func (s *supervisor) schedule(now time.Time) time.Time {
	next := now.Add(time.Hour)
	if s.b.watchdog != nil {
		s.b.watchdog.ping()
		next = minTime(next, now.Add(s.b.watchdog.interval))
	}
	if at := s.trim.run(now); !at.IsZero() {
		next = minTime(next, at)
	}
	for _, name := range s.order {
		u := s.units[name]
		if (s.draining || u.replacing) && (u.state == stateBackoff || u.state == stateWaiting) {
			continue
		}
		switch u.state {
		case stateBackoff:
			if now.Before(u.next) {
				next = minTime(next, u.next)
				continue
			}
			u.state = stateWaiting
			fallthrough
		case stateWaiting:
			if u.preparing {
				continue // started once its image is ready
			}
			ready, _, reason := s.readiness(u)
			if !ready {
				if reason != u.waitReason {
					s.b.log.Printf("container %s: %s", name, reason)
					u.waitReason = reason
				}
				u.answer("restart", false, fmt.Sprintf("stopped %s; its start is %s", name, reason))
				continue
			}
			u.waitReason = ""
			s.start(u)
			if u.state == stateBackoff {
				next = minTime(next, u.next)
			}
			// A start changes what others wait for: look again soon.
			next = minTime(next, now.Add(10*time.Millisecond))
		case stateStopping:
			if now.Before(u.stopDeadline) {
				next = minTime(next, u.stopDeadline)
				if at := s.resendStop(u, now); !at.IsZero() {
					next = minTime(next, at)
				}
				continue
			}
			u.stopLook = time.Time{}
			if u.c != nil {
				s.b.log.Printf("container %s did not stop within %s: SIGKILL", name, u.stopDeadline.Sub(u.stopStarted).Round(time.Millisecond))
				u.c.Kill()
			}
			u.stopDeadline = now.Add(time.Hour)
		}
	}
	return next
}

// finished reports whether every unit has ended by itself: exited, failed,
// or waiting on a dependency that will never be ready. A unit the
// operator stopped, or an update in progress, keeps the appliance up.
func (s *supervisor) finished() bool {
	if s.b.gens != nil && s.b.gens.updating {
		return false // a rollback may bring the containers back
	}
	for _, u := range s.units {
		switch u.state {
		case stateExited, stateFailed:
		case stateWaiting:
			if _, blocked, _ := s.readiness(u); !blocked || u.preparing {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// status is berth boot's exit status: 0 when no container failed or
// exited non-zero.
func (s *supervisor) status() int {
	for _, u := range s.units {
		if u.state == stateFailed || (u.state == stateExited && u.lastStatus() != 0) {
			return 1
		}
	}
	return 0
}

// stopAll stops the running containers in reverse dependency order: in
// rounds, each stopping at once every container no running one depends on
// (its stop signal, then SIGKILL after its stop timeout), and waiting for
// them before the next round. Exits and the watchdog keep being served.
func (s *supervisor) stopAll() {
	s.stopPreparing(shutdownImageWait)
	s.draining = true
	for _, u := range s.units {
		if u.state == stateBackoff || u.state == stateWaiting {
			u.state = stateStopped
		}
		// Nothing starts again: a restart's client is told now.
		u.answer("restart", true, u.name+": the restart was cancelled by the shutdown")
	}
	for {
		round := s.stopRound()
		if len(round) == 0 {
			s.flushOutput()
			return
		}
		t := time.Now()
		giveUp := t
		for _, u := range round {
			timeout := u.sup.stopTimeout
			if s.hurry {
				timeout = 0
			}
			s.stop(u, timeout)
			giveUp = maxTime(giveUp, u.stopDeadline.Add(hurryWait))
		}
		s.roundEnd = giveUp
		for _, u := range round {
			s.waitStopped(u)
			if u.state == stateStopped {
				// Its own time: a round's units are waited for one by one.
				took := time.Since(t)
				if !u.stoppedAt.Before(t) {
					took = u.stoppedAt.Sub(t)
				}
				s.b.log.Printf("container %s stopped in %s", u.name, took.Round(time.Millisecond))
			} else {
				s.b.log.Printf("container %s did not stop", u.name)
				u.state = stateStopped // do not wait for it again
			}
		}
	}
}

// stopRound returns the running containers that no running one comes
// after: the next round of a shutdown.
func (s *supervisor) stopRound() []*unit {
	var round []*unit
	for _, name := range stopOrder(s.order, s.units) {
		u := s.units[name]
		if (u.state == stateRunning || u.state == stateStopping) && !s.neededByRunning(name) {
			round = append(round, u)
		}
	}
	return round
}

// neededByRunning reports whether a running container comes after name,
// directly or through others: web after migrate (a oneshot, long exited)
// after db keeps db up until web has stopped.
func (s *supervisor) neededByRunning(name string) bool {
	for _, u := range s.units {
		if (u.state == stateRunning || u.state == stateStopping) && s.comesAfter(u, name, map[string]bool{}) {
			return true
		}
	}
	return false
}

// comesAfter reports whether name is in u's `after` closure. Config
// validation refuses cycles; seen guards against one anyway.
func (s *supervisor) comesAfter(u *unit, name string, seen map[string]bool) bool {
	for _, a := range u.sup.after {
		if a == name {
			return true
		}
		if d := s.units[a]; d != nil && !seen[a] {
			seen[a] = true
			if s.comesAfter(d, name, seen) {
				return true
			}
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// waitStopped serves signals and the watchdog until u has stopped or
// the round's end (roundEnd) passes, sending SIGKILL when its stop
// timeout is over.
func (s *supervisor) waitStopped(u *unit) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	// Signals are a second shutdown's only during the shutdown: a
	// reload's wait leaves them to the loop.
	var sigs <-chan os.Signal
	if s.draining {
		sigs = s.b.sigs
	}
	for u.state == stateStopping && time.Now().Before(s.roundEnd) {
		select {
		case <-s.b.chld:
			s.b.reaper.reap()
		case <-tick.C:
			s.schedule(time.Now())
		case sig := <-sigs:
			if _, ok := shutdownSignal(sig); ok {
				s.hurryUp("got " + signalName(sig.(syscall.Signal)) + " again")
			}
		case req := <-s.b.requests:
			// A client is told at once, not left waiting for the end;
			// a second shutdown asked for hurries the first.
			msg := "berth is shutting down: containers are being stopped"
			if s.draining && (req.Verb == "reboot" || req.Verb == "poweroff") {
				s.hurryUp(req.Verb + " asked for again")
				msg += "; those left are killed now"
			}
			req.reply <- reply{Response: Response{Error: msg}}
		}
	}
}

// hurryWait is how long a shutdown waits for a container SIGKILL did not
// end (a process stuck in the kernel on a dead disk): after its stop
// timeout, or from a hurry.
const hurryWait = 5 * time.Second

// hurryUp cuts the shutdown short when it is asked for a second time (a
// UPS's SIGPWR after the operator's SIGTERM, say): the containers still
// stopping get SIGKILL now, not after their stop timeouts, and the later
// rounds' at once.
func (s *supervisor) hurryUp(why string) {
	if s.hurry {
		return
	}
	s.hurry = true
	s.b.log.Printf("%s during the shutdown: the containers left are killed now (SIGKILL)", why)
	now := time.Now()
	s.roundEnd = minTime(s.roundEnd, now.Add(hurryWait))
	for _, u := range s.units {
		if u.state == stateStopping && u.stopDeadline.After(now) {
			u.stopDeadline = now
		}
	}
	s.schedule(now)
}

// flushOutput waits, briefly, for the output of exited containers to be
// logged: their pipes close just after their exits are reaped.
func (s *supervisor) flushOutput() {
	done := make(chan struct{})
	go func() { s.outputs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func describeLimits(l container.Limits) string {
	mem, pids := "no memory limit", "no pids limit"
	if l.Memory > 0 {
		mem = "memory " + container.FormatSize(l.Memory)
	}
	if l.Pids > 0 {
		pids = fmt.Sprintf("pids %d", l.Pids)
	}
	return mem + ", " + pids
}
