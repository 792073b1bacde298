package boot

import (
	"os"
	"os/signal"
	"syscall"
)

// catchSignals routes every signal to berth. It is the first thing PID 1
// does: Go's default action for SIGTERM, SIGINT, SIGHUP, SIGUSR1/2 and
// SIGPIPE ends the process, and PID 1 ending panics the kernel.
func catchSignals() chan os.Signal {
	c := make(chan os.Signal, 64)
	signal.Notify(c)
	return c
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
