package boot

import "fmt"

// readiness says whether a unit's after = [...] dependencies let it start:
// each must be running, or, for a oneshot job, have exited 0. blocked is
// set when a dependency can no longer get there (it failed, exited with
// an error, or was stopped), so the unit will not start by itself.
func readiness(u *unit, units map[string]*unit) (ready, blocked bool, reason string) {
	for _, name := range u.sup.after {
		d := units[name]
		if d == nil {
			return false, true, fmt.Sprintf("%s is not in the config", name)
		}
		switch {
		case d.sup.oneshot && d.state == stateExited && d.lastStatus() == 0:
			continue
		case !d.sup.oneshot && d.state == stateRunning:
			continue
		case d.state == stateFailed, d.state == stateStopped,
			d.state == stateExited && (d.lastStatus() != 0 || !d.sup.oneshot):
			return false, true, fmt.Sprintf("%s is %s", name, d.describeState())
		default:
			if d.sup.oneshot {
				return false, false, fmt.Sprintf("waiting for oneshot %s to finish", name)
			}
			return false, false, fmt.Sprintf("waiting for %s to run", name)
		}
	}
	return true, false, ""
}

// readiness is the unit's readiness by its dependencies and, with
// needs_network, the network's (network.go). Waiting for the network
// never blocks for good: an uplink may come up any time.
func (s *supervisor) readiness(u *unit) (ready, blocked bool, reason string) {
	if u.preparing {
		return false, false, u.imageWaitDetail()
	}
	if ready, blocked, reason = readiness(u, s.units); !ready {
		return ready, blocked, reason
	}
	if why := s.networkWait(u); why != "" {
		return false, false, why
	}
	return true, false, ""
}

// stopOrder returns the units in the order a shutdown stops them: those
// that others come after are stopped last (reverse dependency order);
// otherwise in reverse config order.
func stopOrder(order []string, units map[string]*unit) []string {
	start := startOrder(order, units)
	for i, j := 0, len(start)-1; i < j; i, j = i+1, j-1 {
		start[i], start[j] = start[j], start[i]
	}
	return start
}

// startOrder returns the units in config order, each after the units it
// comes after: the order in which they can start.
func startOrder(order []string, units map[string]*unit) []string {
	placed := map[string]bool{}
	var start []string // start order: dependencies first
	var visit func(name string)
	visit = func(name string) {
		if placed[name] || units[name] == nil {
			return
		}
		placed[name] = true
		for _, d := range units[name].sup.after {
			visit(d)
		}
		start = append(start, name)
	}
	for _, n := range order {
		visit(n)
	}
	return start
}
