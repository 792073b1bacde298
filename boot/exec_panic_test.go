package boot

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestExecPanicContained: a panic in an exec's start (a bug of berth's,
// here a test hook) fails that exec with status 125 and a short error
// naming it; berth logs it with its stack and goes on: the container
// still runs, the supervisor still answers, and the next exec works. It
// used to be a fatal error, ending the supervisor loop as a panic of
// PID 1's own would (the appliance rebooted).
func TestExecPanicContained(t *testing.T) {
	name := fmt.Sprintf("fixle-xp%d", os.Getpid())
	h := startHostBoot(t, fmt.Sprintf("[[container]]\nname = %q\nimage = \"IMAGE\"\ncommand = [\"sleep\", \"100000\"]\nstop_timeout = \"1s\"\n", name), nil, nil)
	h.waitFor(name+" running", time.Minute, func() bool { return h.ps()[name].State == "running" })
	// Opened here: execTrue also runs on a goroutine, where t.Fatal must
	// not be called.
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	execTrue := func() (int, error) {
		stdio := []*os.File{devnull, devnull, devnull}
		return Exec(h.sock, Request{Verb: "exec", Name: name, Exec: &ExecRequest{Args: []string{"true"}}}, stdio, func(Response, *os.File) {})
	}
	execStartHook = func() { panic("exec start test panic") }
	type result struct {
		code int
		err  error
	}
	answered := make(chan result, 1)
	go func() {
		code, err := execTrue()
		answered <- result{code, err}
	}()
	var r result
	select {
	case r = <-answered:
	case <-time.After(time.Minute): // a hang guard: the old code never answered
		t.Fatalf("no answer to the exec whose start panicked:\n%s", h.console.String())
	}
	execStartHook = nil
	want := "container " + name + ": exec: start: internal error (panic: exec start test panic), logged by berth"
	if r.code != 125 || r.err == nil || r.err.Error() != want {
		t.Errorf("exec with a panicking start: %d, %v; want 125, %q", r.code, r.err, want)
	}
	if c := h.console.String(); !strings.Contains(c, "exec start test panic") || !strings.Contains(c, "execReaped") {
		t.Errorf("the panic's stack is not in berth's log:\n%s", c)
	}
	if strings.Contains(h.console.String(), "FATAL") {
		t.Errorf("the exec's panic was fatal:\n%s", h.console.String())
	}
	if p := h.ps()[name]; p.State != "running" || p.Restarts != 0 {
		t.Errorf("after the exec's panic: %+v, want running, never restarted", p)
	}
	if code, err := execTrue(); code != 0 || err != nil {
		t.Errorf("exec after the panic: %d, %v", code, err)
	}
}
