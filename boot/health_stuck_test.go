package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// stuckConfig is TestHealthCheckUnkillable's container: its check
// passes until SHARED/stuck is there, then runs "sleep 73373", which
// the test freezes.
const stuckConfig = `[[container]]
name = "%s"
image = "IMAGE"
command = ["sleep", "100000"]
restart = "always"
stop_timeout = "1s"
[[container.mount]]
source = "SHARED"
target = "/shared"
[container.health]
command = ["sh", "-c", "test -e /shared/stuck && exec sleep 73373; exit 0"]
interval = "300ms"
timeout = "3s"
retries = 2
on_unhealthy = "restart"
`

// TestHealthCheckUnkillable: a check that cannot be killed at its
// timeout (frozen in a cgroup-v1 freezer, as a read of a hung disk or
// NFS server holds it: State D, SIGKILL pending) fails at the timeout,
// and fails again at each interval it is still there, so the container
// turns unhealthy and its restart begins while the check is still
// frozen; no second check starts meanwhile. Once thawed, the check is
// reaped, the container has restarted and runs healthy again, and
// nothing is left behind.
func TestHealthCheckUnkillable(t *testing.T) {
	if _, err := os.Stat(freezerRoot + "/cgroup.procs"); err != nil {
		t.Skip("no cgroup-v1 freezer at " + freezerRoot)
	}
	name := fmt.Sprintf("fixle-hc%d", os.Getpid())
	h := startHostBoot(t, fmt.Sprintf(stuckConfig, name), nil, nil)
	// Its cleanup, a thaw, runs before berth powers off.
	fz := newFreezer(t, fmt.Sprintf("fixle-freeze%d", os.Getpid()))
	h.waitFor(name+" healthy", time.Minute, func() bool { return h.ps()[name].Health == "healthy" })
	before := counts()
	stuck := filepath.Join(h.shared, "stuck")
	if err := os.WriteFile(stuck, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pid := 0
	h.waitFor("a check frozen", time.Minute, func() bool {
		for _, p := range processesRunning("sleep", "73373") {
			if fz.hold(p) {
				pid = p
				return true
			}
		}
		return false
	})
	// What the console says from here on: a check that timed out on a
	// loaded machine before the freeze restarted the container once
	// already, and its lines must not pass for the frozen check's
	// (flaky-test audit).
	mark := len(h.console.String())
	since := func() string { return h.console.String()[mark:] }
	restarting := fmt.Sprintf("container %s is unhealthy (2 failed checks in a row): restarting it", name)
	h.waitFor("the restart of "+name+" as unhealthy", time.Minute, func() bool { return strings.Contains(since(), restarting) })
	// The stop has begun; it ends once the check is gone (the kernel
	// waits for it to empty the container's PID namespace).
	if !strings.Contains(since(), "stopping container "+name) {
		t.Error("the unhealthy container's stop did not begin")
	}
	if !slices.Contains(fz.procs(), pid) {
		t.Fatalf("check %d is no longer frozen: the test froze nothing", pid)
	}
	if info := h.health(name); info.Health != HealthUnhealthy || info.FailingStreak < 2 || info.LastExitCode == nil ||
		*info.LastExitCode != 137 || !strings.Contains(info.LastOutput, "has not exited yet") {
		t.Errorf("health while the check is frozen: %+v", info)
	}
	if n := len(processesRunning("sleep", "73373")); n != 1 {
		t.Errorf("%d checks run at once", n)
	}
	// Thawed, the check dies of its SIGKILL; the container starts again.
	if err := os.Remove(stuck); err != nil {
		t.Fatal(err)
	}
	fz.set("THAWED")
	h.waitFor("the thawed check's end", time.Minute, func() bool { return len(processesRunning("sleep", "73373")) == 0 })
	h.waitFor(name+" restarted and healthy", time.Minute, func() bool {
		p := h.ps()[name]
		return p.Restarts >= 1 && p.State == "running" && p.Health == "healthy"
	})
	waitCounts(t, before)
}

// waitCounts waits until this process's goroutines and fds are back to
// before at most: one still ending is let finish, a leak never does.
// The wait is a hang guard, not a timing check.
func waitCounts(t *testing.T, before count) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		now := counts()
		if now.goroutines <= before.goroutines && now.fds <= before.fds {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines and %d fds, %d and %d before\n%s", now.goroutines, now.fds,
				before.goroutines, before.fds, buf[:runtime.Stack(buf, true)])
		}
	}
}

// freezerRoot is the host's cgroup-v1 freezer hierarchy.
const freezerRoot = "/sys/fs/cgroup/freezer"

// freezer is a frozen cgroup-v1 freezer cgroup of a test's own: a
// process moved into it stops where it is, in the kernel (State D), and
// no signal, not even SIGKILL, ends it until it is thawed.
type freezer struct {
	t   *testing.T
	dir string
}

// newFreezer makes the frozen cgroup name; the test's end thaws and
// removes it.
func newFreezer(t *testing.T, name string) *freezer {
	t.Helper()
	f := &freezer{t: t, dir: filepath.Join(freezerRoot, name)}
	if err := os.Mkdir(f.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.remove)
	if err := f.set("FROZEN"); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *freezer) set(state string) error {
	return os.WriteFile(filepath.Join(f.dir, "freezer.state"), []byte(state), 0)
}

// hold moves pid into the cgroup and reports whether it is frozen
// there: false when it has exited meanwhile.
func (f *freezer) hold(pid int) bool {
	if os.WriteFile(filepath.Join(f.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0) != nil {
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		state, _ := os.ReadFile(filepath.Join(f.dir, "freezer.state"))
		if strings.TrimSpace(string(state)) == "FROZEN" {
			return slices.Contains(f.procs(), pid)
		}
	}
	return false
}

// procs lists the processes in the cgroup.
func (f *freezer) procs() []int {
	data, _ := os.ReadFile(filepath.Join(f.dir, "cgroup.procs"))
	var pids []int
	for _, s := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(s); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// remove thaws the cgroup, moves what is still in it back to the root
// and removes it.
func (f *freezer) remove() {
	if err := f.set("THAWED"); err != nil {
		f.t.Errorf("thaw %s: %v", f.dir, err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		for _, pid := range f.procs() {
			_ = os.WriteFile(filepath.Join(freezerRoot, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
		}
		err := os.Remove(f.dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Errorf("remove %s: %v", f.dir, err)
			return
		}
	}
}
