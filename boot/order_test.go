package boot

import (
	"reflect"
	"testing"
)

// TestStopRounds checks which running containers a shutdown stops first:
// none that a running container comes after, directly or through a
// oneshot that has long exited.
func TestStopRounds(t *testing.T) {
	type def struct {
		name  string
		after []string
		state unitState
	}
	tests := []struct {
		name string
		defs []def
		want []string // stopped in the first round
	}{
		{"independent", []def{{"a", nil, stateRunning}, {"b", nil, stateRunning}}, []string{"b", "a"}},
		{"direct", []def{{"db", nil, stateRunning}, {"web", []string{"db"}, stateRunning}}, []string{"web"}},
		{"through an exited oneshot", []def{
			{"db", nil, stateRunning},
			{"migrate", []string{"db"}, stateExited},
			{"web", []string{"migrate"}, stateRunning},
			{"admin", []string{"web"}, stateRunning},
		}, []string{"admin"}},
		{"dependent already stopped", []def{
			{"db", nil, stateRunning},
			{"web", []string{"db"}, stateStopped},
		}, []string{"db"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &supervisor{units: map[string]*unit{}}
			for _, d := range tc.defs {
				s.units[d.name] = &unit{name: d.name, state: d.state, sup: supervision{after: d.after}}
				s.order = append(s.order, d.name)
			}
			var got []string
			for _, u := range s.stopRound() {
				got = append(got, u.name)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("first round %v, want %v", got, tc.want)
			}
		})
	}
}
