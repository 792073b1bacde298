package cli

import (
	"os"
	"os/signal"
	"syscall"

	"berth/container"
)

// runSignals are the signals berth run forwards to the container's first
// process (SIGWINCH resizes its terminal).
var runSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// caught are the signals berth run catches for its container.
type caught struct {
	c     chan os.Signal
	ready chan struct{}
}

// catchSignals catches runSignals on another goroutine: signal.Notify
// takes a round trip with the runtime's signal thread per signal, which
// need not hold up the container's start. A signal that comes before
// it is done ends berth run, as one during its own start-up does, and
// the container with it.
func catchSignals() *caught {
	s := &caught{c: make(chan os.Signal, 8), ready: make(chan struct{})}
	go func() {
		signal.Notify(s.c, runSignals...)
		close(s.ready)
	}()
	return s
}

// forward passes each caught signal on to ct's first process, once
// they are all caught.
func (s *caught) forward(ct *container.Container, term *terminal) {
	<-s.ready
	go func() {
		for sig := range s.c {
			if sig == syscall.SIGWINCH {
				term.resize()
				continue
			}
			_ = ct.Signal(sig.(syscall.Signal))
		}
	}()
}

// stop lets the signals go, off the exit path: berth run is ending.
func (s *caught) stop() {
	go func() {
		<-s.ready
		signal.Stop(s.c)
	}()
}
