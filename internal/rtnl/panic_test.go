package rtnl

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestDialNSPanic: a panic on the thread that entered the namespace is
// DialNS's error, naming it; the thread goes back to its own namespace
// (or ends), the test process lives on and the next DialNS works. The
// namespace entered is the test's own: nothing is changed.
func TestDialNSPanic(t *testing.T) {
	ns, err := os.Open("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	dialNSHook = func() { panic("rtnl test panic") }
	c, err := DialNS(int(ns.Fd()))
	dialNSHook = nil
	if c != nil || err == nil || !strings.Contains(err.Error(), "internal error (panic: rtnl test panic)") ||
		!strings.Contains(err.Error(), "dialFromNS") {
		t.Fatalf("DialNS with a panic: %v, %v", c, err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		away := 0
		for _, task := range tasks {
			if l, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net"); err == nil && l != own {
				away++
			}
		}
		if away == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d threads left in another network namespace", away)
		}
	}
	c, err = DialNS(int(ns.Fd()))
	if err != nil {
		t.Fatalf("DialNS after the panic: %v", err)
	}
	c.Close()
}
