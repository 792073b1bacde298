package boot

import (
	"os"
	"os/signal"
	"syscall"

	"berth/container"
)

// signals are the channels berth's signals arrive on: child exits on
// chld, every other signal berth catches on sigs.
type signals struct {
	sigs chan os.Signal
	chld chan os.Signal
}

// catchSignals routes signals to berth. It is the first thing PID 1 does:
// Go's default action for SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE and
// others ends the process, and PID 1 ending panics the kernel. Every
// signal that can be caught is, but for two that would crowd out the
// rest: os/signal drops a signal whose channel is full, and the loop may
// be busy for seconds. SIGURG, which Go's runtime sends many times a
// second to preempt busy goroutines, is left to the runtime (and
// SIGWINCH, which PID 1 ignores anyway). SIGCHLD has a channel of its own
// that holds one: one pending is enough, as a reap takes every child that
// has exited, and any number of exits cannot push a SIGTERM out.
func catchSignals() signals {
	s := signals{sigs: make(chan os.Signal, 64), chld: make(chan os.Signal, 1)}
	signal.Notify(s.chld, syscall.SIGCHLD)
	signal.Notify(s.sigs, caughtSignals()...)
	container.IgnoreLibcSignals() // 32 and 34: os/signal cannot catch them
	return s
}

// caughtSignals is every signal but SIGKILL and SIGSTOP, which cannot be
// caught, SIGCHLD, SIGURG and SIGWINCH (catchSignals); 32 and 34 are
// ignored instead (container.IgnoreLibcSignals).
func caughtSignals() []os.Signal {
	var out []os.Signal
	for n := syscall.Signal(1); n < 65; n++ {
		switch n {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGWINCH:
			continue
		}
		out = append(out, n)
	}
	return out
}

// Action is what the appliance does when berth shuts down.
type Action int

const (
	PowerOff Action = iota
	Reboot
	Halt
)

func (a Action) String() string {
	switch a {
	case Reboot:
		return "reboot"
	case Halt:
		return "halt"
	}
	return "power off"
}

// shutdownSignal maps a signal to the shutdown it asks for, following the
// conventions of sysvinit and systemd for PID 1: SIGTERM and SIGINT
// (Ctrl-Alt-Del) reboot, SIGUSR1 halts, SIGUSR2 and SIGPWR power off.
func shutdownSignal(s os.Signal) (Action, bool) {
	switch s {
	case syscall.SIGTERM, syscall.SIGINT:
		return Reboot, true
	case syscall.SIGUSR1:
		return Halt, true
	case syscall.SIGUSR2, syscall.SIGPWR:
		return PowerOff, true
	}
	return 0, false
}
