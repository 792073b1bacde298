package boot

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestCatchSignalsNotCrowdedOut: while nothing reads berth's signals (a
// busy supervisor loop), thousands of SIGCHLDs and SIGURGs (the Go
// runtime's preemption signal) cannot push a SIGTERM out: os/signal drops
// a signal whose channel is full. The SIGTERM arrives, the SIGCHLDs wait
// as one, and neither they nor a SIGURG take a place in the queue.
func TestCatchSignalsNotCrowdedOut(t *testing.T) {
	s := catchSignals()
	defer signal.Stop(s.sigs)
	defer signal.Stop(s.chld)
	pid := os.Getpid()
	for range 1000 {
		for _, sig := range []syscall.Signal{syscall.SIGCHLD, syscall.SIGURG} {
			if err := syscall.Kill(pid, sig); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(50 * time.Microsecond) // lets os/signal hand each one on
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second) // a hang guard, not a timing check
	for got := false; !got; {
		select {
		case sig := <-s.sigs:
			switch sig {
			case syscall.SIGTERM:
				got = true
			case syscall.SIGCHLD, syscall.SIGURG:
				t.Fatalf("%v on the channel of the other signals", sig)
			}
		case <-deadline:
			t.Fatal("SIGTERM was lost behind the SIGCHLDs and SIGURGs")
		}
	}
	select {
	case <-s.chld:
	default:
		t.Error("no SIGCHLD pending")
	}
}

// TestCaughtSignals: every signal that can be caught is, but SIGCHLD
// (on its own channel), SIGURG and SIGWINCH.
func TestCaughtSignals(t *testing.T) {
	got := make(map[os.Signal]bool)
	for _, s := range caughtSignals() {
		got[s] = true
	}
	for _, s := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGPIPE, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPWR, syscall.SIGTSTP, syscall.Signal(64)} {
		if !got[s] {
			t.Errorf("%v is not caught", s)
		}
	}
	for _, s := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGWINCH} {
		if got[s] {
			t.Errorf("%v is caught", s)
		}
	}
}
