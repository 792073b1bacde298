package boot

import (
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/container"
)

// TestNextHealth walks docker's health rule through sequences of checks.
func TestNextHealth(t *testing.T) {
	type check struct {
		ok, inStart bool
		want        Health
		streak      int
	}
	pass, fail, failEarly := func(w Health) check { return check{true, false, w, 0} },
		func(w Health, n int) check { return check{false, false, w, n} },
		func(w Health, n int) check { return check{false, true, w, n} }
	for _, tc := range []struct {
		name    string
		retries int
		checks  []check
	}{
		{"one pass is healthy", 3, []check{pass(HealthHealthy)}},
		{"retries failures in a row are unhealthy", 3, []check{
			fail(HealthStarting, 1), fail(HealthStarting, 2), fail(HealthUnhealthy, 3), fail(HealthUnhealthy, 4)}},
		{"a pass ends the streak", 3, []check{
			pass(HealthHealthy), fail(HealthHealthy, 1), fail(HealthHealthy, 2), pass(HealthHealthy), fail(HealthHealthy, 1)}},
		{"healthy turns unhealthy after retries failures", 2, []check{
			pass(HealthHealthy), fail(HealthHealthy, 1), fail(HealthUnhealthy, 2)}},
		{"unhealthy turns healthy on one pass", 1, []check{fail(HealthUnhealthy, 1), pass(HealthHealthy)}},
		{"retries = 1: one failure", 1, []check{fail(HealthUnhealthy, 1)}},
		{"failures within start_period do not count", 1, []check{
			failEarly(HealthStarting, 0), failEarly(HealthStarting, 0), fail(HealthUnhealthy, 1)}},
		{"start_period ends at the first pass", 2, []check{
			pass(HealthHealthy), failEarly(HealthHealthy, 1), failEarly(HealthUnhealthy, 2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, streak := HealthStarting, 0
			for i, c := range tc.checks {
				h, streak = nextHealth(h, streak, c.ok, c.inStart, tc.retries)
				if h != c.want || streak != c.streak {
					t.Fatalf("check %d (ok %v, in start_period %v): %s streak %d, want %s streak %d", i+1, c.ok, c.inStart, h, streak, c.want, c.streak)
				}
			}
		})
	}
}

// TestHealthWatch: a watcher's channel closes when Health or Running
// changes, not on a check that changes neither.
func TestHealthWatch(t *testing.T) {
	h := newHealthState("web", &healthCheck{retries: 3})
	info, changed := h.watch()
	if info.Health != HealthStarting || info.Running {
		t.Fatalf("new: %+v", info)
	}
	h.update(func(i *HealthInfo) { i.Running = true })
	select {
	case <-changed:
	default:
		t.Fatal("Running changed, the channel stayed open")
	}
	_, changed = h.watch()
	h.update(func(i *HealthInfo) { i.FailingStreak = 1 })
	select {
	case <-changed:
		t.Fatal("nothing a watcher waits for changed, the channel closed")
	default:
	}
	if from, to := h.update(func(i *HealthInfo) { i.Health = HealthHealthy }); from != HealthStarting || to != HealthHealthy {
		t.Errorf("update returned %s -> %s", from, to)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Health changed, the channel stayed open")
	}
	if none, _ := newHealthState("db", nil).watch(); none.Health != HealthNone {
		t.Errorf("without a check: %s", none.Health)
	}
}

// TestReadTail: of a check's output berth keeps the last
// maxHealthOutput bytes, and reads no more than maxHealthRead: a writer
// that goes on gets EPIPE.
func TestReadTail(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w *os.File) error
		want  func(string) bool
	}{
		{"short", func(w *os.File) error { _, err := w.WriteString("OK\n"); return err }, func(s string) bool { return s == "OK\n" }},
		{"the end of a long one", func(w *os.File) error {
			_, err := w.WriteString(strings.Repeat("x", 10000) + "the end")
			return err
		}, func(s string) bool {
			return s == "…"+strings.Repeat("x", maxHealthOutput-7)+"the end"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			go func() { tc.write(w); w.Close() }()
			r.SetReadDeadline(time.Now().Add(time.Minute))
			if got := readTail(r); !tc.want(got) {
				t.Errorf("got %d bytes: %.60q…", len(got), got)
			}
		})
	}
	t.Run("a flood", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		done := make(chan string)
		r.SetReadDeadline(time.Now().Add(time.Minute))
		go func() { done <- readTail(r) }()
		chunk := []byte(strings.Repeat("y", 64<<10))
		written := 0
		for {
			n, err := w.Write(chunk)
			written += n
			if err != nil {
				if err.(*os.PathError).Err != syscall.EPIPE {
					t.Fatalf("write: %v", err)
				}
				break
			}
		}
		got := <-done
		if len(got) != len("…")+maxHealthOutput || written > maxHealthRead+2*len(chunk)+1<<16 {
			t.Errorf("kept %d bytes; the writer wrote %d before EPIPE", len(got), written)
		}
	})
}

// TestUnhealthyExit: the exit of a container stopped as unhealthy goes to
// the restart policy as a failure, even with status 0; a stop asked for
// while it stops wins.
func TestUnhealthyExit(t *testing.T) {
	cfg, err := ParseConfig("f.toml", []byte("[[container]]\nname = \"web\"\nimage = \"i\"\nrestart = \"on-failure\"\n"+
		"[container.health]\ncommand = [\"/c\"]\non_unhealthy = \"restart\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, operatorStop := range []bool{false, true} {
		s := newSupervisor(&booter{log: NewLogger(io.Discard)}, cfg)
		u := s.units["web"]
		u.state, u.health.restarting = stateStopping, true
		if operatorStop {
			s.stop(u, time.Second)
		}
		unhealthy := s.exitedUnhealthy(u, container.Exit{Code: 0})
		switch {
		case operatorStop && (unhealthy || u.state != stateStopping || u.health.lastRestart):
			t.Errorf("an operator's stop: unhealthy %v, state %s, lastRestart %v", unhealthy, u.state, u.health.lastRestart)
		case !operatorStop && (!unhealthy || u.state != stateBackoff || u.restarts != 1 || !u.health.lastRestart):
			t.Errorf("an unhealthy stop, exit 0: unhealthy %v, state %s, restarts %d, lastRestart %v", unhealthy, u.state, u.restarts, u.health.lastRestart)
		}
	}
}

// TestHealthRunEnded: a checker's result that comes once its run has
// ended — its container stopped, or started again — is dropped, and
// changes nothing the new run shows.
func TestHealthRunEnded(t *testing.T) {
	h := newHealthState("web", &healthCheck{})
	run := h.newRun() // the container starts
	if _, to, ok := h.updateRun(run, func(i *HealthInfo) { i.Health = HealthHealthy }); !ok || to != HealthHealthy {
		t.Fatalf("the current run's result: %v %v", to, ok)
	}
	h.newRun() // it stops
	next := h.newRun()
	h.update(func(i *HealthInfo) { i.Health = HealthStarting })
	if _, _, ok := h.updateRun(run, func(i *HealthInfo) { i.Health = HealthUnhealthy }); ok {
		t.Error("a result of an ended run was taken")
	}
	if info, _ := h.watch(); info.Health != HealthStarting {
		t.Errorf("after an ended run's result: %s, want starting", info.Health)
	}
	if _, _, ok := h.updateRun(next, func(i *HealthInfo) {}); !ok {
		t.Error("the new run's result was dropped")
	}
}

// TestHealthInfoPreviousRun: a running container whose last check came
// before its current start (restarted, no check yet in this run) shows
// that check as its previous run's; once a check of this run is in, it
// does not.
func TestHealthInfoPreviousRun(t *testing.T) {
	u := &unit{name: "web", sup: supervision{health: &healthCheck{}}, health: newHealthState("web", &healthCheck{})}
	s := &supervisor{units: map[string]*unit{"web": u}, order: []string{"web"}}
	before := time.Now().Add(-3 * time.Second)
	u.health.update(func(i *HealthInfo) { i.Running, i.LastCheck = true, &before })
	u.started = time.Now()
	if info := s.healthInfo(); len(info) != 1 || !info[0].PreviousRun {
		t.Errorf("restarted, no check yet: %+v, want previous_run", info)
	}
	now := time.Now()
	u.health.update(func(i *HealthInfo) { i.LastCheck = &now })
	if info := s.healthInfo(); info[0].PreviousRun {
		t.Errorf("a check of this run: %+v, want no previous_run", info)
	}
}
