package boot

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// TestShutdownModuleHang: a module load that never ends (a driver's
// probe that hangs) holds the shutdown for modulesShutdownWait, then the
// shutdown goes on and says so; one that ends is waited for.
func TestShutdownModuleHang(t *testing.T) {
	defer func(d time.Duration) { modulesShutdownWait = d }(modulesShutdownWait)
	modulesShutdownWait = 100 * time.Millisecond
	var log strings.Builder
	b := &booter{log: NewLogger(&log)}
	m := &moduleLoad{later: make(chan struct{}), done: make(chan struct{})}
	m.laterOnce = sync.OnceFunc(func() { close(m.later) })
	b.modules = m
	done := make(chan struct{})
	go func() { b.finishModules(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute): // a hang guard, not a timing check
		t.Fatal("the shutdown waits on a module load that never ends")
	}
	b.log.Flush(5 * time.Second)
	if !strings.Contains(log.String(), "warning: modules still loading after 100ms; shutting down without them") {
		t.Errorf("log: %q", log.String())
	}
	// A load that ends is waited for and reported.
	log.Reset()
	m2 := &moduleLoad{later: make(chan struct{}), done: make(chan struct{}), loaded: []string{"i6300esb"}}
	m2.laterOnce = sync.OnceFunc(func() { close(m2.later); close(m2.done) })
	b.modules = m2
	b.finishModules()
	b.log.Flush(5 * time.Second)
	if !strings.Contains(log.String(), "modules loaded: [i6300esb]") {
		t.Errorf("log: %q", log.String())
	}
}
