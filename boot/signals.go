package boot

import (
	"os"
	"os/signal"
	"syscall"
	"unsafe"
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
	ignoreLibcSignals()
	return s
}

// ignoreLibcSignals ignores signals 32 and 34. Go's runtime keeps them
// for C libraries' threads (glibc's SIGCANCEL, musl's SIGSYNCCALL) and,
// without cgo, installs no handler for them: signal.Notify and
// signal.Ignore leave them alone, and their default action, to
// terminate, ended a berth boot at once, without a word and with its
// containers left running. (33, glibc's SIGSETXID, has the runtime's own
// handler, which its all-threads system calls need: it is left alone.
// PID 1 gets no signal the kernel would kill it for.) A container's
// first process gets them back at their default (container/child.go,
// container/init.go).
func ignoreLibcSignals() {
	var act [8]uintptr // struct sigaction of SIG_IGN, for every architecture
	act[0] = 1
	for _, sig := range []uintptr{32, 34} {
		_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, sig, uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	}
}

// caughtSignals is every signal but SIGKILL and SIGSTOP, which cannot be
// caught, SIGCHLD, SIGURG and SIGWINCH (catchSignals); 32 and 34 are
// ignored instead (ignoreLibcSignals).
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
