package boot

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestReplacedRounds: the containers a switch replaces are stopped in
// rounds, dependents first — web, then app, then db — and a kept
// container that comes after one of them (report, after db) holds none
// back. A replaced one not running is kept from starting, and one that
// exits by itself while it waits for its round is not restarted.
func TestReplacedRounds(t *testing.T) {
	cfg, err := ParseConfig("/t/berth.toml", []byte(`
[[container]]
name = "db"
image = "/i.tar"
command = ["db"]
stop_timeout = "2s"

[[container]]
name = "app"
image = "/i.tar"
command = ["app"]
after = ["db"]
stop_timeout = "30s"

[[container]]
name = "web"
image = "/i.tar"
command = ["web"]
after = ["app"]

[[container]]
name = "report"
image = "/i.tar"
command = ["report"]
after = ["db"]

[[container]]
name = "cron"
image = "/i.tar"
command = ["cron"]
`))
	if err != nil {
		t.Fatal(err)
	}
	console := &lockedBuffer{}
	s := newSupervisor(&booter{log: NewLogger(console)}, cfg)
	// Stopping already (a stop sends no signal then); cron in backoff,
	// due now.
	for _, name := range []string{"db", "app", "web", "report"} {
		s.units[name].state, s.units[name].stopDeadline = stateStopping, time.Now().Add(time.Hour)
	}
	s.units["cron"].state = stateBackoff
	p := plan{changed: []string{"db", "app", "web"}, removed: []string{"cron"}, kept: []string{"report"}}
	done := map[string]bool{}
	for _, want := range [][]string{{"web"}, {"app"}, {"db"}, nil} {
		round, giveUp := s.replacedRound(p, done)
		if !reflect.DeepEqual(round, want) {
			t.Fatalf("round %v, want %v (done %v)", round, want, done)
		}
		for _, name := range round {
			if d := s.units[name].stopDeadline; d.After(time.Now().Add(s.units[name].sup.stopTimeout)) {
				t.Errorf("%s: stop deadline %s, want within its stop_timeout", name, time.Until(d))
			}
			if giveUp.Before(s.units[name].stopDeadline.Add(5 * time.Second)) {
				t.Errorf("round %v gives up before %s's stop timeout and grace", round, name)
			}
			done[name] = true
		}
	}
	if u := s.units["cron"]; u.state != stateStopped || !u.replacing {
		t.Errorf("cron: %s, replacing %v; want stopped and replacing", u.state, u.replacing)
	}
	if s.units["report"].replacing {
		t.Error("report, kept, is marked replacing")
	}
	s.schedule(time.Now())
	if st := s.units["cron"].state; st != stateStopped {
		t.Errorf("cron after the loop's schedule: %s", st)
	}
	// A container of a round still stopping when the round gives up is
	// logged, and the switch does not wait for it again.
	s.units["db"].state = stateStopping
	s.endRound([]string{"db"}, time.Now())
	if !s.units["db"].stopGivenUp() {
		t.Error("db, still stopping at the round's end, is not marked given up")
	}
	// A replaced container that exits by itself stays stopped.
	u := s.units["web"]
	u.state = stateRunning
	if !s.replacedExit(u) {
		t.Error("replacedExit: false for a replaced container")
	}
	s.b.log.Flush(5 * time.Second)
	if u.state != stateStopped || !strings.Contains(console.String(), "container web: not restarted: an update replaces it") ||
		!strings.Contains(console.String(), "container db did not stop: the switch replaces it anyway") {
		t.Errorf("web after its own exit: %s; log:\n%s", u.state, console.String())
	}
}
