package boot

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"berth/container"
)

// unitState is where a container is in its life under supervision.
type unitState string

const (
	stateWaiting  unitState = "waiting"  // not started: waiting for its dependencies
	stateRunning  unitState = "running"  // its first process runs
	stateStopping unitState = "stopping" // stop signal sent, waiting for the exit
	stateBackoff  unitState = "backoff"  // exited; restarts when the backoff ends
	stateExited   unitState = "exited"   // ended and stays down by its restart policy
	stateFailed   unitState = "failed"   // could not start or gave up restarting
	stateStopped  unitState = "stopped"  // stopped by the operator or the shutdown
)

// unit is one supervised container.
type unit struct {
	name   string
	cfg    ContainerConfig
	sup    supervision
	spec   container.Spec // with Rootfs once the image is ready
	policy *restartPolicy
	log    *logRing

	state     unitState
	c         *container.Container
	started   time.Time
	restarts  int
	lastExit  *container.Exit
	lastError string    // why the last start failed
	next      time.Time // backoff: when to start again
	// stopDeadline is when a stopping unit gets SIGKILL; thenStart
	// restarts it once stopped (berth restart).
	stopDeadline time.Time
	// stopStarted is when the stop began: the SIGKILL's log line gives
	// the timeout it had (a request's, a hurry's), not stop_timeout.
	stopStarted time.Time
	// stopLook, while its first process has had no handler for the
	// stop signal sent (which the kernel dropped), is when to look
	// again; zero otherwise (stop_signal.go).
	stopLook  time.Time
	thenStart bool
	// stoppedAt is when it last stopped as asked (the shutdown's log).
	stoppedAt time.Time
	// warned is set once its start's warnings (a seccomp profile's
	// unknown system calls) are logged: a unit's definition, and so its
	// warnings, change only with a reload, which makes a new unit.
	warned bool
	// waitReason is the last "waiting for ..." logged, to log changes only.
	waitReason string
	// waiters are control requests answered once the unit has stopped or
	// started again (control_stop.go).
	waiters []waiter
	// preparing is set while the image goroutine readies it at boot.
	preparing bool
	// replacing is set once an update stops it for a switch that
	// replaces or removes it (update_stop.go): it is not started again.
	replacing bool
	// imageWait is why the last pull of its registry image failed, and
	// imageRetry when the next begins (pull.go).
	imageWait  string
	imageRetry time.Time
	// address is a bridge container's address, kept across restarts.
	address string
	// cpu is the last sample of its CPU time (stats.go).
	cpu cpuSample
	// health is its health check's state (health.go).
	health *healthState
}

// newUnit makes the unit of a validated [[container]]. A log_file that
// cannot be opened, or whose directory is one of own or in one, is
// logged: the output still reaches the ring and the console.
func newUnit(cc ContainerConfig, log *Logger, own ownTrees) *unit {
	sup := cc.supervision(func(string, string, ...any) {}) // validated
	var file *rotatingFile
	if sup.logFile != "" {
		var err error
		warn := func(err error) { log.Printf("warning: container %s: %v", cc.Name, err) }
		if file, err = openRotatingFile(sup.logFile, sup.logFileSize, sup.logFiles, warn, own.logDirCheck); err != nil {
			log.Printf("warning: container %s: %v; its output goes to its log ring only", cc.Name, err)
		}
	}
	return &unit{
		name: cc.Name, cfg: cc, sup: sup, spec: cc.Spec(""), policy: newRestartPolicy(sup),
		log: newLogRing(sup.logSize, file), state: stateWaiting, health: newHealthState(cc.Name, sup.health),
	}
}

// lastStatus is the exit status of the last run, -1 when there was none.
func (u *unit) lastStatus() int {
	if u.lastExit == nil {
		if u.lastError != "" {
			return 125
		}
		return -1
	}
	return u.lastExit.Status()
}

// describeState is the state with the detail a user wants beside it.
func (u *unit) describeState() string {
	switch u.state {
	case stateExited, stateFailed:
		if u.lastError != "" {
			return fmt.Sprintf("%s (%s)", u.state, u.lastError)
		}
		if u.lastExit != nil {
			return fmt.Sprintf("%s (status %d)", u.state, u.lastExit.Status())
		}
	}
	return string(u.state)
}

// start starts the unit's container; its output goes to its log ring and,
// unless log_console = false, to the console.
func (s *supervisor) start(u *unit) {
	// The supervisor has decided to start u: with BERTH_TRACE set, bench
	// start times a supervised start from here to the workload's exec.
	container.Trace("decide")
	s.trim.activity(time.Now())
	if why := s.volumesMissing(u.cfg); why != "" {
		s.startFailed(u, why)
		return
	}
	if u.spec.Rootfs == "" {
		s.startFailed(u, "its image is not ready")
		return
	}
	spec, closeMounts, err := s.resolveMounts(u.spec)
	if err != nil {
		s.startFailed(u, err.Error())
		return
	}
	defer closeMounts()
	r, w, err := os.Pipe()
	if err != nil {
		s.startFailed(u, err.Error())
		return
	}
	defer w.Close()
	opts := container.Options{Stdout: w, Stderr: w, ExternalReaper: true}
	if u.spec.Net == "bridge" {
		if opts.Network, err = s.attach(u); err != nil {
			r.Close()
			s.startFailed(u, err.Error())
			return
		}
	}
	var c *container.Container
	lim, out := newOutputLimiter(time.Now()), &drainingPipe{f: r}
	// The reader waits on the pipe before the container can write to it:
	// started after the start, on one CPU it ran only once the loop and
	// the image goroutine had let go of the CPU, and the first lines came
	// 26-61 ms later under QEMU TCG (bench/README.md, stop 51). A start
	// that fails closes r, which ends it.
	s.outputs.Add(1)
	s.b.goSafe(func() {
		defer s.outputs.Done()
		s.copyOutput(u, out, lim)
	})
	err = s.b.reaper.start(func() (int, error) {
		var err error
		c, err = container.Start(s.b.cgroups, spec, opts)
		if err != nil {
			return 0, err
		}
		return c.Pid, nil
	}, func(ws syscall.WaitStatus) {
		out.ended(time.Now()) // its output is drained, then closed
		s.exited(u, c, ws)
	})
	if err != nil {
		r.Close()
		s.detach(u, false)
		s.startFailed(u, err.Error())
		return
	}
	u.c, u.state, u.started, u.lastError = c, stateRunning, time.Now(), ""
	s.b.log.Printf("container %s started: pid %d, %s", u.name, c.Pid, describeLimits(u.spec.Limits))
	if !u.warned { // once, not at every restart of a crash loop
		for _, w := range c.Warnings {
			s.b.log.Printf("container %s: warning: %s", u.name, w)
		}
		u.warned = len(c.Warnings) > 0
	}
	s.startHealth(u, c)
	s.b.laterModules() // the first container is up: the watchdog's driver may load
	u.answer("restart", false, fmt.Sprintf("restarted %s: pid %d", u.name, c.Pid))
}

// startFailed records a start that did not happen, as an exit with status
// 125 for the restart policy.
func (s *supervisor) startFailed(u *unit, why string) {
	u.lastError, u.lastExit = why, nil
	s.b.log.Printf("container %s could not start: %s", u.name, why)
	u.answer("restart", true, fmt.Sprintf("%s stopped, but could not start again: %s", u.name, why))
	s.afterExit(u, 125, 0)
}

// maxLogLine is the longest line a container's log keeps whole: a longer
// one is kept as several lines of this length.
const maxLogLine = 64 << 10

// copyOutput feeds each line the container writes into its log, at
// the output rate, until every writer (the container and its children)
// has closed the pipe or, once its first process has exited, the drain
// is over (outputdrain.go); then it closes the pipe.
func (s *supervisor) copyOutput(u *unit, out *drainingPipe, lim *outputLimiter) {
	defer out.f.Close()
	forEachLine(out, maxLogLine, func(line string) {
		now := lim.take(time.Now(), len(line))
		u.log.add(LogLine{Time: now, Text: line})
		if u.sup.logConsole {
			s.b.log.Output(u.name, line)
		}
	})
}

// forEachLine calls fn with each line read from r, without its "\n" or
// "\r\n", until r ends or fails; a line longer than max bytes comes as
// pieces of about max bytes, so no line, however long, stops the reading
// (the writer would then get EPIPE and its later output would be lost).
// Nothing waits for more output than it has: a piece ending in a CR is
// passed on without it, and the CR goes to the front of what follows
// unless that is the LF completing a CRLF (a CR that ends the output
// ends its line).
func forEachLine(r io.Reader, max int, fn func(string)) {
	br := bufio.NewReaderSize(r, max)
	split := false // the last piece filled the buffer: its line goes on
	cr := false    // and ended in a CR, held back
	for {
		b, err := br.ReadSlice('\n')
		held := ""
		if cr && len(b) > 0 {
			cr = false
			if b[0] == '\n' {
				b = b[:0] // the held CR and this LF end the line
			} else {
				held = "\r"
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			piece := held + string(b)
			if len(piece) > 1 && piece[len(piece)-1] == '\r' {
				piece, cr = piece[:len(piece)-1], true
			}
			fn(piece)
			split = true
			continue
		case split && (len(b) == 0 || string(b) == "\n" || string(b) == "\r\n"):
			// The newline right after a piece ends that line: no empty
			// one, nor one of the CR held back ("\r\r\n" ends a line).
		case len(b) > 0 && b[len(b)-1] == '\n':
			b = b[:len(b)-1]
			if len(b) > 0 && b[len(b)-1] == '\r' {
				b = b[:len(b)-1]
			}
			fn(held + string(b))
		case len(b) > 0:
			fn(held + strings.TrimSuffix(string(b), "\r")) // the last line, without a newline
		}
		if err != nil {
			return
		}
		split = false
	}
}

// exited is the reaper's callback for the container's first process.
func (s *supervisor) exited(u *unit, c *container.Container, ws syscall.WaitStatus) {
	s.trim.activity(time.Now())
	exit, err := c.Exited(ws)
	if err != nil {
		s.b.log.Printf("container %s: clean up: %v", u.name, err)
	}
	if u.c != c {
		return // a container of an earlier definition, replaced by a reload
	}
	s.detach(u, false)
	s.stopHealth(u)
	u.c, u.lastExit = nil, &exit
	s.b.log.Printf("%s, %s after its start", exit, exit.Runtime.Round(time.Millisecond))
	if s.replacedExit(u) {
		return
	}
	if s.exitedUnhealthy(u, exit) {
		return
	}
	if u.state == stateStopping {
		u.state, u.stoppedAt = stateStopped, time.Now()
		s.b.log.Printf("container %s stopped", u.name)
		u.answer("stop", false, fmt.Sprintf("stopped %s (%s)", u.name, exit.Describe()))
		if u.thenStart {
			u.thenStart = false
			u.policy.reset()
			u.state = stateWaiting
		}
		return
	}
	s.afterExit(u, exit.Status(), exit.Runtime)
}

// afterExit applies the restart policy to an exit or a failed start.
func (s *supervisor) afterExit(u *unit, status int, ran time.Duration) {
	if s.draining { // the shutdown: nothing restarts, nothing is counted
		u.state = stateExited
		return
	}
	d := u.policy.onExit(status, ran, time.Now())
	switch {
	case d.restart:
		u.state, u.next = stateBackoff, time.Now().Add(d.delay)
		u.restarts++
		s.b.log.Printf("container %s: %s", u.name, d.reason)
	case d.failed:
		u.state = stateFailed
		s.b.log.Printf("container %s failed: %s", u.name, d.reason)
	default:
		u.state = stateExited
	}
}

// stop sends the unit its stop signal; the loop sends SIGKILL to its whole
// cgroup when timeout (its stop_timeout, unless a request said otherwise)
// passes.
func (s *supervisor) stop(u *unit, timeout time.Duration) {
	u.health.restarting = false // a stop asked for wins over a restart for health
	switch u.state {
	case stateRunning:
		s.stopHealth(u)
		u.state = stateStopping
		u.stopStarted = time.Now()
		u.stopDeadline = u.stopStarted.Add(timeout)
		s.b.log.Printf("stopping container %s (%s, SIGKILL after %s)", u.name, signalName(u.sup.stopSignal), timeout)
		_ = u.c.Signal(u.sup.stopSignal)
		s.stopSent(u, u.stopStarted)
	case stateStopping:
		if d := time.Now().Add(timeout); d.Before(u.stopDeadline) {
			u.stopDeadline = d
		}
	default:
		u.state = stateStopped
	}
}
