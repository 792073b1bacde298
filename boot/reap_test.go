package boot

import (
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReaperStartUnlocked: the reaper keeps reaping while a start is
// under way (an exec's start can take seconds; the supervisor loop, which
// reaps, must not wait for it), and a child that exits before its start
// has returned still reaches its owner.
func TestReaperStartUnlocked(t *testing.T) {
	r := newReaper()
	reaped := make(chan bool)
	got := make(chan syscall.WaitStatus, 1)
	var childPid int
	go func() {
		err := r.start(func() (int, error) {
			pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "exit 7"}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
			if err != nil {
				return 0, err
			}
			childPid = pid
			// The child has exited; the loop reaps it now, while the
			// start is still under way.
			waitExited(t, pid)
			reaped <- true
			<-reaped
			return pid, nil
		}, func(ws syscall.WaitStatus) { got <- ws })
		if err != nil {
			t.Error(err)
			close(got)
		}
	}()
	<-reaped
	done := make(chan struct{})
	go func() { r.reap(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second): // a hang guard: the old reaper waited for the start
		t.Fatal("reap waited for the start under way")
	}
	reaped <- true
	ws := <-got
	if !ws.Exited() || ws.ExitStatus() != 7 {
		t.Errorf("pid %d: status %v, want exit 7", childPid, ws)
	}
	if r.orphans != 0 || len(r.early) != 0 || len(r.owners) != 0 {
		t.Errorf("left: %d orphans, %d early, %d owners", r.orphans, len(r.early), len(r.owners))
	}
}

// waitExited waits until pid has exited, without reaping it.
func waitExited(t *testing.T, pid int) {
	var si unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &si, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			if err != nil {
				t.Errorf("waitid %d: %v", pid, err)
			}
			return
		}
	}
}

// TestReaperClonedOwnsThroughFlood: an exec's child is owned from its
// clone on (startCloned). While its start is held, the container's
// processes — children of berth's by CLONE_PARENT — may exit by the
// thousand and fill early; the child's own status still reaches its
// owner once the start returns. (With start, it was dropped as an orphan
// past early's bound, and its owner waited for ever.)
func TestReaperClonedOwnsThroughFlood(t *testing.T) {
	r := newReaper()
	cloned := make(chan int)
	release := make(chan struct{})
	got := make(chan syscall.WaitStatus, 1)
	// The child exits when its stdin ends, after the flood: with a
	// timed exit, a flood slower than the time (a loaded machine) reaped
	// it inside the loop, and the wait for it below found no child.
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	go func() {
		err := r.startCloned(func(owned func(int)) (int, error) {
			pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "read x; exit 7"}, &syscall.ProcAttr{Files: []uintptr{stdinR.Fd(), 1, 2}})
			stdinR.Close()
			if err != nil {
				return 0, err
			}
			owned(pid)
			cloned <- pid
			<-release // the start held, as a stopped child holds an exec's
			return pid, nil
		}, func(ws syscall.WaitStatus) { got <- ws })
		if err != nil {
			t.Error(err)
		}
	}()
	pid := <-cloned
	// Others spawn meanwhile (another exec under way keeps early open).
	r.mu.Lock()
	r.spawning++
	r.mu.Unlock()
	for i := 0; i < maxEarly+100; i++ {
		p, err := syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{Files: []uintptr{0, 1, 2}})
		if err != nil {
			t.Fatal(err)
		}
		waitExited(t, p)
		r.reap()
	}
	stdinW.Close()
	waitExited(t, pid)
	r.reap()
	close(release)
	select {
	case ws := <-got:
		if !ws.Exited() || ws.ExitStatus() != 7 {
			t.Errorf("pid %d: status %v, want exit 7", pid, ws)
		}
	case <-time.After(time.Minute): // a hang guard, not a timing check
		t.Fatal("the exec's owner never got its status")
	}
	r.mu.Lock()
	r.spawning--
	r.settleEarly()
	r.mu.Unlock()
	if len(r.owners) != 0 {
		t.Errorf("owners left: %d", len(r.owners))
	}
}
