package boot

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/container"
)

// maxHealthRead bounds what berth reads of one check's output: past it,
// berth closes the pipe (the check gets EPIPE or SIGPIPE), so a check
// that floods costs PID 1 neither memory nor much CPU.
const maxHealthRead = 1 << 20

// healthDrain is how long, after a check has exited, berth still reads
// the output that a process it left behind may hold open.
const healthDrain = 100 * time.Millisecond

// checkResult is one check's outcome.
type checkResult struct {
	started time.Time
	ok      bool
	code    int // as a shell gives it: 128+N for signal N
	output  string
}

// runChecks runs u's checks while its container c, started at started,
// runs (its run of u.health): the first an interval after the start,
// each next an interval after the last ended, until stop is closed. A
// result that comes once the run has ended is dropped.
//
// A check killed at its timeout fails at once (status 137), but the
// next one starts only once it has exited: checks never pile up. A
// check that cannot be killed (in uninterruptible sleep on a hung disk
// or NFS server, or frozen) fails again at each interval it is still
// there, so retries and on_unhealthy act on it as on any failure.
func (s *supervisor) runChecks(u *unit, c *container.Container, started time.Time, run uint64, stop <-chan struct{}) {
	hc := u.sup.health
	s.b.log.Printf("container %s: health check %s", u.name, hc.describe())
	t := time.NewTimer(hc.interval)
	defer t.Stop()
	var killed <-chan syscall.WaitStatus // a killed check not yet exited
	for {
		select {
		case <-stop:
			return
		case <-killed:
			killed = nil // the next check starts at the next interval
			continue
		case <-t.C:
		}
		var r checkResult
		if killed != nil {
			r = stillKilled(hc)
		} else {
			var done bool
			if r, killed, done = s.runCheck(c, hc, stop); done {
				return
			}
		}
		if !s.recordCheck(u, c, started, run, r, stop) {
			return
		}
		t.Reset(hc.interval)
	}
}

// stillKilled is the failure of an interval that passed while the
// check killed at its timeout had not exited yet.
func stillKilled(hc *healthCheck) checkResult {
	return checkResult{started: time.Now(), code: 137,
		output: fmt.Sprintf("[berth: the check killed at its timeout of %s has not exited yet: no new check runs until it does]", hc.timeout)}
}

// recordCheck records r, a check of u's container c (started at
// started) in its run, and tells the loop when the container turns
// unhealthy with on_unhealthy = "restart". It returns false when the
// checks must end: the run has ended, or stop was closed.
func (s *supervisor) recordCheck(u *unit, c *container.Container, started time.Time, run uint64, r checkResult, stop <-chan struct{}) bool {
	hc := u.sup.health
	from, to, current := u.health.updateRun(run, func(i *HealthInfo) {
		i.Health, i.FailingStreak = nextHealth(i.Health, i.FailingStreak, r.ok, r.started.Sub(started) < hc.startPeriod, hc.retries)
		at, code := r.started, r.code
		i.LastCheck, i.LastExitCode, i.LastOutput = &at, &code, r.output
	})
	if !current {
		return false
	}
	if from != to {
		s.b.log.Printf("container %s is %s (check status %d%s)", u.name, to, r.code, cutOutput(r.output))
	}
	if from != to && to == HealthUnhealthy && hc.restart {
		select {
		case s.healthEvents <- healthEvent{u, c}:
		case <-stop:
			return false
		}
	}
	return true
}

// runCheck runs the check once in c, as berth exec does, and waits for
// its end: at most its timeout, then it is killed and fails at once;
// killed then brings its exit, which the next check waits for. done is
// set when stop was closed meanwhile (or the container has ended):
// there is no result.
func (s *supervisor) runCheck(c *container.Container, hc *healthCheck, stop <-chan struct{}) (r checkResult, killed <-chan syscall.WaitStatus, done bool) {
	r.started = time.Now()
	rd, w, err := os.Pipe()
	if err != nil {
		r.code, r.output = 125, "could not start: "+err.Error()
		return r, nil, false
	}
	p, exited, err := s.execReaped(c, container.ExecOptions{Args: hc.command, Stdout: w, Stderr: w, ExternalReaper: true, StartTimeout: hc.timeout})
	w.Close()
	var se *container.StartError
	switch {
	case errors.Is(err, container.ErrNotRunning):
		rd.Close()
		return r, nil, true
	case errors.As(err, &se):
		r.code = se.Code
	case err != nil:
		r.code = 125
	}
	if err != nil {
		rd.Close()
		r.output = "could not start: " + err.Error()
		return r, nil, false
	}
	defer p.Pidfd.Close()
	// The deadline is set before the reader starts: an exit seen first
	// shortens it to the drain, which the reader must not undo.
	deadline := r.started.Add(hc.timeout)
	_ = rd.SetReadDeadline(deadline)
	output := make(chan string, 1)
	s.b.goSafe(func() { output <- readTail(rd) })
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	var ws syscall.WaitStatus
	select {
	case ws = <-exited:
		_ = rd.SetReadDeadline(minTime(deadline, time.Now().Add(healthDrain)))
	case <-timer.C:
		// Failed now, whether or not the kill takes: a check the kernel
		// holds (uninterruptible sleep, a frozen cgroup) is not reaped
		// until it lets go, and the health must not wait for that.
		killCheck(p)
		r.code, r.output = 137, <-output+fmt.Sprintf("\n[berth: killed: no answer within the timeout of %s]", hc.timeout)
		return r, exited, false
	case <-stop:
		killCheck(p)
		return r, nil, true
	}
	r.code, r.output = exitStatus(ws), <-output
	r.ok = r.code == 0
	return r, nil, false
}

// killCheck kills a check that overran its timeout, with what it
// started: its process group, which it leads (an exec without a
// terminal starts a session of its own, child_exec.go); a process that
// left the group (setsid) is left to the container.
func killCheck(p *container.Process) {
	// The group first: while its leader lives, a session leader that
	// cannot leave it, the group's id is its own; then the leader by its
	// pidfd, which names it whatever happened.
	_ = unix.Kill(-p.Pid, unix.SIGKILL)
	_ = unix.PidfdSendSignal(int(p.Pidfd.Fd()), unix.SIGKILL, nil, 0)
}

// readTail reads what a check writes to r until it ends, r's read
// deadline passes or maxHealthRead bytes have come, closes r, and
// returns the last maxHealthOutput bytes ("…" first when it kept only
// the end).
func readTail(r *os.File) string {
	defer r.Close()
	var buf [maxHealthOutput]byte
	tail := make([]byte, 0, 2*maxHealthOutput)
	cut := false
	for total := 0; total < maxHealthRead; {
		n, err := r.Read(buf[:])
		total += n
		tail = append(tail, buf[:n]...)
		if len(tail) > maxHealthOutput {
			tail, cut = append(tail[:0], tail[len(tail)-maxHealthOutput:]...), true
		}
		if err != nil {
			break
		}
	}
	out := strings.ToValidUTF8(string(tail), "\uFFFD")
	if cut {
		out = "…" + out
	}
	return out
}
