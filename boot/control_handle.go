package boot

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"berth/container"
)

// handle answers a control request on the supervisor loop. It returns
// true with an action when the request asks for a shutdown.
func (s *supervisor) handle(r request) (Action, bool) {
	answer := func(resp Response) { r.reply <- reply{Response: resp} }
	fail := func(format string, args ...any) { answer(Response{Error: fmt.Sprintf(format, args...)}) }
	u := s.units[r.Name]
	needsName := map[string]bool{"logs": true, "start": true, "stop": true, "restart": true, "exec": true}
	if needsName[r.Verb] && u == nil {
		fail("no container %s (containers: %s)", container.Quote(r.Name), strings.Join(s.order, ", "))
		return 0, false
	}
	switch r.Verb {
	case "ps":
		answer(Response{Processes: s.processes()})
	case "stats":
		rows, err := s.stats(r.Names)
		if err != nil {
			fail("%v", err)
			return 0, false
		}
		answer(Response{Stats: rows})
	case "status":
		answer(Response{Status: s.statusInfo()})
	case "logs":
		r.reply <- reply{ring: u.log}
	case "start":
		s.startRequest(u, answer, fail)
	case "exec":
		s.exec(u, r)
	case "stop", "restart":
		if u.replacing && r.Verb == "restart" {
			fail("%s", replacingMsg(u))
			return 0, false
		}
		s.b.log.Printf("container %s: %s asked for over the control socket", u.name, r.Verb)
		s.stopRequest(u, r)
	case "reload", "apply", "rollback":
		s.b.log.Printf("%s asked for over the control socket", r.Verb)
		kind := map[string]updateKind{"reload": updateReload, "apply": updateApply, "rollback": updateRollback}[r.Verb]
		if kind == updateApply && r.Path == "" {
			fail("apply: no config file given")
			return 0, false
		}
		s.startUpdate(kind, &r) // answered when it has ended
	case "reboot", "poweroff":
		action := Reboot
		if r.Verb == "poweroff" {
			action = PowerOff
		}
		s.b.log.Printf("%s asked for over the control socket", action)
		answer(Response{Message: action.String()})
		return action, true
	case "debug-signal", "debug-hang":
		s.debugRequest(r, answer, fail)
	default:
		fail("unknown verb %q", r.Verb)
	}
	return 0, false
}

// startRequest is berth start: a container that is not running is
// started again by the supervisor loop, its restart policy reset.
func (s *supervisor) startRequest(u *unit, answer func(Response), fail func(string, ...any)) {
	if u.replacing {
		fail("%s", replacingMsg(u))
		return
	}
	switch u.state {
	case stateRunning, stateStopping:
		fail("container %s is %s", u.name, u.state)
		return
	}
	u.policy.reset()
	u.state, u.waitReason = stateWaiting, ""
	s.b.log.Printf("container %s: start asked for over the control socket", u.name)
	answer(Response{Message: "starting " + u.name})
}

// debugRequest answers the verbs of berth.debug: debug-signal lets a
// test deliver a signal to PID 1 from a container, whose PID namespace
// hides PID 1, so that the signal takes the real path; debug-hang wedges
// the supervisor loop, as a hung one would be.
func (s *supervisor) debugRequest(r request, answer func(Response), fail func(string, ...any)) {
	if !s.b.debug {
		fail("%s needs berth.debug on the kernel command line", r.Verb)
		return
	}
	if r.Verb == "debug-hang" {
		s.b.log.Printf("debug: the supervisor loop hangs now, as a wedged one would")
		answer(Response{Message: "hanging"})
		for {
			time.Sleep(time.Hour)
		}
	}
	sig, err := parseSignal(r.Name)
	if err != nil {
		fail("%v", err)
		return
	}
	answer(Response{Message: "sending " + signalName(sig) + " to berth"})
	s.b.log.Flush(consoleFlushWait) // what berth logged before a signal that may end it
	_ = syscall.Kill(os.Getpid(), sig)
}

// processes is berth ps.
func (s *supervisor) processes() []Process {
	var out []Process
	now := time.Now()
	for _, name := range s.order {
		u := s.units[name]
		p := Process{Name: name, State: string(u.state), Restarts: u.restarts, MemoryLimit: u.spec.Limits.Memory, Address: u.address,
			AppArmor: u.spec.AppArmor, SELinuxLabel: u.spec.SELinuxLabel, Health: u.describeHealth()}
		if u.c != nil {
			started := u.started
			p.Pid, p.Started = u.c.Pid, &started
			p.UptimeSec = time.Since(u.started).Seconds()
			if p.Stats = u.readStats(now); p.Stats.Memory != nil {
				p.Memory = *p.Stats.Memory
			}
			for _, port := range u.spec.PublishedPorts() {
				p.Ports = append(p.Ports, port.String())
			}
		}
		switch {
		case u.lastError != "":
			p.LastExit = "could not start: " + u.lastError
			code := 125
			p.ExitCode = &code
		case u.lastExit != nil:
			p.LastExit = u.lastExit.String()
			code := u.lastExit.Status()
			p.ExitCode, p.OOMKilled = &code, u.lastExit.OOM()
			if u.lastExit.Signal != 0 {
				p.ExitSignal = signalName(u.lastExit.Signal)
			}
			if u.health.lastRestart {
				p.LastExit = "stopped as unhealthy: " + p.LastExit
			}
		}
		switch u.state {
		case stateWaiting:
			_, _, p.Detail = s.readiness(u)
		case stateBackoff:
			p.Detail = "restarts in " + max(time.Until(u.next), 0).Round(time.Millisecond).String()
		}
		out = append(out, p)
	}
	return out
}

// statusInfo is berth status.
func (s *supervisor) statusInfo() *Status {
	st := &Status{
		Version: Version, PID1: s.b.opts.PID1, Board: s.b.board, UptimeSec: Uptime(), BerthUptimeSec: Uptime() - s.b.started,
		Kernel: kernelRelease(), Cgroups: s.b.cgroups.String(), Config: s.b.cfg.path,
		Watchdog: "none", Containers: len(s.units),
	}
	st.Memory = selfMemory()
	st.RSS, st.RSSAnon, st.RSSFile = st.Memory.RSS, st.Memory.Anon, st.Memory.File
	if s.b.uplink != nil {
		st.Network = s.b.uplink.Status()
	}
	if s.b.watchdog != nil {
		st.Watchdog = fmt.Sprintf("%s, timeout %s", s.b.watchdog.dev, s.b.watchdog.timeout)
	}
	if s.b.clock != nil {
		st.Clock = s.b.clock.info()
	}
	st.Storage = s.b.storageInfo()
	st.Security = s.b.security
	st.Health = s.healthInfo()
	st.Generation = s.b.gens.info()
	for _, name := range s.order {
		u := s.units[name]
		if u.state == stateRunning {
			st.Running++
		}
		st.Images = append(st.Images, ImageInfo{Container: name, Path: s.b.cfg.ImagePath(u.cfg), Rootfs: u.spec.Rootfs,
			AppArmor: u.spec.AppArmor, SELinuxLabel: u.spec.SELinuxLabel})
	}
	sort.SliceStable(st.Images, func(i, j int) bool { return st.Images[i].Container < st.Images[j].Container })
	return st
}
