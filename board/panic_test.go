package board

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// warnings is a Network's Warn that collects what it is given.
func warnings() (chan string, func(string, ...any)) {
	ch := make(chan string, 16)
	return ch, func(format string, args ...any) { ch <- fmt.Sprintf(format, args...) }
}

// TestWatchResolvConfPanic: a panic in the resolv.conf watcher stops it,
// reported through Warn with the panic, and the test process lives on.
func TestWatchResolvConfPanic(t *testing.T) {
	ch, warn := warnings()
	n := &Network{ResolvConf: filepath.Join(t.TempDir(), "resolv.conf"), Warn: warn}
	watchHook = func() { panic("watch test panic") }
	defer func() { watchHook = nil }()
	stop, err := n.WatchResolvConf()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := os.WriteFile(n.ResolvConf, []byte("nameserver 192.0.2.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-ch:
		if !strings.Contains(w, "watch "+n.ResolvConf+": internal error (panic: watch test panic)") ||
			!strings.Contains(w, "watchResolvConf") || !strings.Contains(w, "no longer watched") {
			t.Errorf("warning: %s", w)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no warning of the watcher's panic")
	}
}

// TestSweepPanic: a panic in the background sweep of stale links is
// reported through Warn with the panic, and the test process lives on.
func TestSweepPanic(t *testing.T) {
	ch, warn := warnings()
	n := &Network{Warn: warn}
	sweepHook = func() { panic("sweep test panic") }
	defer func() { sweepHook = nil }()
	n.sweep([]string{"bthstale0"})
	n.sweeping.Wait()
	select {
	case w := <-ch:
		if !strings.Contains(w, "delete stale links [bthstale0]: internal error (panic: sweep test panic)") ||
			!strings.Contains(w, "deleteLinks") {
			t.Errorf("warning: %s", w)
		}
	default:
		t.Fatal("no warning of the sweep's panic")
	}
}
