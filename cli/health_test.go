package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/boot"
)

// healthConfig is TestHealthChecks' appliance: a check that passes, one
// that fails and restarts its container, one that hangs, two with a
// start_period, one that floods its output, one that leaves a process
// behind, one that cannot start.
const healthConfig = `
[[container]]
name = "good"
image = "bb.tar.zst"
command = ["sleep", "1000"]
stop_timeout = "1s"
[[container.mount]]
source = "MARKS"
target = "/marks"
[container.health]
command = ["sh", "-c", "echo checked >> /marks/good; echo all good"]
interval = "100ms"

[[container]]
name = "bad"
image = "bb.tar.zst"
command = ["sleep", "1000"]
stop_timeout = "1s"
restart = "on-failure"
max_restarts = 2
restart_window = "1h"
[container.health]
command = ["sh", "-c", "echo not listening; exit 3"]
interval = "100ms"
retries = 2
on_unhealthy = "restart"

[[container]]
name = "hang"
image = "bb.tar.zst"
command = ["sleep", "2000"]
stop_timeout = "1s"
[container.health]
command = ["sleep", "999"]
interval = "100ms"
timeout = "300ms"
retries = 1

[[container]]
name = "early"
image = "bb.tar.zst"
command = ["sleep", "1000"]
stop_timeout = "1s"
[[container.mount]]
source = "MARKS"
target = "/marks"
[container.health]
command = ["sh", "-c", "echo checked >> /marks/early; exit 1"]
interval = "100ms"
retries = 1
start_period = "1h"

[[container]]
name = "late"
image = "bb.tar.zst"
command = ["sleep", "1000"]
stop_timeout = "1s"
[container.health]
command = ["false"]
interval = "100ms"
retries = 1
start_period = "1s"

[[container]]
name = "flood"
image = "bb.tar.zst"
command = ["sleep", "1000"]
stop_timeout = "1s"
[container.health]
command = ["sh", "-c", "test -e /marks/flood && yes 0123456789abcdef | head -c 100000000; echo the end"]
interval = "100ms"
[[container.mount]]
source = "MARKS"
target = "/marks"

[[container]]
name = "forker"
image = "bb.tar.zst"
command = ["sleep", "1000"]
stop_timeout = "1s"
[container.health]
command = ["sh", "-c", "sleep 996 & sleep 995"]
interval = "100ms"
timeout = "300ms"
retries = 1

[[container]]
name = "leaver"
image = "bb.tar.zst"
command = ["sleep", "1000"]
stop_timeout = "1s"
[container.health]
command = ["sh", "-c", "sleep 1000 & echo left one behind"]
interval = "500ms"
timeout = "1h"
retries = 1

[[container]]
name = "nocmd"
image = "bb.tar.zst"
command = ["sleep", "1000"]
stop_timeout = "1s"
[container.health]
command = ["/no/such/check"]
interval = "100ms"
retries = 1
`

// healthBoot is berth boot running healthConfig on this host.
type healthBoot struct {
	t        *testing.T
	log      *bootLog
	marksDir string
	pid      int
}

func startHealthBoot(t *testing.T) *healthBoot {
	dir := t.TempDir()
	packBusybox(t, dir)
	marks := filepath.Join(dir, "marks")
	if err := os.Mkdir(marks, 0o777); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, strings.ReplaceAll(healthConfig, "MARKS", marks))
	log, cmd := bootInDir(t, dir, cfg)
	return &healthBoot{t: t, log: log, marksDir: marks, pid: cmd.Process.Pid}
}

func (h *healthBoot) ps() map[string]boot.Process {
	procs := map[string]boot.Process{}
	status, stdout, _ := berth(h.t, "ps", "--json")
	var list []boot.Process
	if status == 0 && json.Unmarshal([]byte(stdout), &list) == nil {
		for _, p := range list {
			procs[p.Name] = p
		}
	}
	return procs
}

func (h *healthBoot) status() *boot.Status {
	status, stdout, _ := berth(h.t, "status", "--json")
	var st boot.Status
	if status != 0 || json.Unmarshal([]byte(stdout), &st) != nil {
		return &boot.Status{}
	}
	return &st
}

func (h *healthBoot) health(name string) boot.HealthInfo {
	for _, info := range h.status().Health {
		if info.Container == name {
			return info
		}
	}
	return boot.HealthInfo{}
}

// TestHealthChecks runs berth boot with health checks and watches them
// as an operator would, through berth ps and berth status.
func TestHealthChecks(t *testing.T) {
	h := startHealthBoot(t)
	// 1. A check that passes: healthy, in ps (table and JSON) and status.
	waitFor(t, "good to be healthy", h.log, func() bool { return h.ps()["good"].Health == "healthy" })
	if status, stdout, _ := berth(t, "ps"); status != 0 || !strings.Contains(stdout, "HEALTH") ||
		!strings.Contains(stdout, " healthy ") {
		t.Errorf("ps table:\n%s", stdout)
	}
	if info := h.health("good"); !info.Running || info.FailingStreak != 0 || info.LastExitCode == nil ||
		*info.LastExitCode != 0 || info.LastOutput != "all good\n" {
		t.Errorf("status of good: %+v", info)
	}
	if status, stdout, _ := berth(t, "status"); status != 0 || !strings.Contains(stdout, `good: healthy, failing streak 0, last check`) ||
		!strings.Contains(stdout, `status 0 "all good"`) {
		t.Errorf("status:\n%s", stdout)
	}
	// 2. A check that fails retries times: unhealthy, then restarted
	// through the restart policy, which gives up after max_restarts.
	waitFor(t, "bad to give up", h.log, func() bool {
		return h.ps()["bad"].State == "failed" &&
			strings.Contains(h.log.String(), "container bad failed: restarted 2 times within 1h0m0s (max_restarts = 2): giving up")
	})
	if p := h.ps()["bad"]; p.Restarts != 2 || !strings.HasPrefix(p.LastExit, "stopped as unhealthy: ") || p.Health != "" {
		t.Errorf("bad in ps: %+v", p)
	}
	if info := h.health("bad"); info.Running || info.Health != boot.HealthUnhealthy || info.FailingStreak != 2 ||
		*info.LastExitCode != 3 || info.LastOutput != "not listening\n" {
		t.Errorf("status of bad: %+v", info)
	}
	for _, w := range []string{`container bad is unhealthy (check status 3: "not listening")`,
		`container bad is unhealthy (2 failed checks in a row): restarting it (on_unhealthy = "restart")`,
		"container bad stopped as unhealthy", "container bad: restart 2 in ",
		"container bad failed: restarted 2 times within 1h0m0s (max_restarts = 2): giving up"} {
		if !strings.Contains(h.log.String(), w) {
			t.Errorf("log lacks %q", w)
		}
	}
	// 3. A check that hangs is killed at its timeout, and never piles up.
	// On a loaded machine the killed check may not have exited by the
	// next interval, which fails as "has not exited yet" (also 137): the
	// status shows a check killed at its timeout once it has.
	waitFor(t, "hang to be unhealthy, its last check killed at its timeout", h.log, func() bool {
		info := h.health("hang")
		return info.Health == boot.HealthUnhealthy && info.LastExitCode != nil && *info.LastExitCode == 137 &&
			strings.Contains(info.LastOutput, "killed: no answer within the timeout of 300ms")
	})
	for i := 0; i < 20; i++ {
		if n := h.checksRunning("999"); n > 1 {
			t.Fatalf("%d checks of hang run at once", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// 3b. A check that hangs with a child: both are killed at its
	// timeout (its process group), and children do not pile up.
	waitFor(t, "forker to be unhealthy", h.log, func() bool { return h.ps()["forker"].Health == "unhealthy" })
	for i := 0; i < 20; i++ {
		if n := sleepsAnywhere("996"); n > 1 {
			t.Fatalf("%d children of forker's checks run at once", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// 4. start_period: failures of checks that began within it do not
	// count (early, 1h); once it is over they do (late, 1s, retries = 1).
	waitFor(t, "five checks of early", h.log, func() bool { return h.marks("early") >= 5 })
	if info := h.health("early"); info.Health != boot.HealthStarting || info.FailingStreak != 0 || *info.LastExitCode != 1 {
		t.Errorf("failures within start_period counted: %+v", info)
	}
	waitFor(t, "late to be unhealthy", h.log, func() bool { return h.ps()["late"].Health == "unhealthy" })
	// 5. A check that floods its output: berth keeps its last 4 KiB and
	// its memory does not grow with what the checks write, 100 MB each.
	flood := func() boot.HealthInfo { return h.health("flood") }
	waitFor(t, "a check of flood", h.log, func() bool { return flood().LastCheck != nil })
	peak := h.status().Memory.HWM
	write(t, filepath.Join(h.marksDir, "flood"), "")
	waitFor(t, "a flood", h.log, func() bool { return strings.HasPrefix(flood().LastOutput, "…") })
	first := *flood().LastCheck
	waitFor(t, "ten more floods", h.log, func() bool { return flood().LastCheck.Sub(first) >= time.Second })
	if grown := h.status().Memory.HWM - peak; grown > 16<<20 {
		t.Errorf("berth's peak RSS grew by %d bytes over ten checks writing 100 MB each", grown)
	}
	if out := flood().LastOutput; len(out) != 4<<10+len("…") || strings.Trim(out[len("…"):], "0123456789abcdef\n") != "" {
		t.Errorf("flood output kept: %d bytes, ending %q", len(out), out[max(0, len(out)-40):])
	}
	// 5b. A check that exits leaving a process that holds its output:
	// judged once it has exited (and the output drained briefly), not
	// at its timeout of 1h.
	waitFor(t, "leaver to be healthy", h.log, func() bool { return h.ps()["leaver"].Health == "healthy" })
	firstLeave := *h.health("leaver").LastCheck
	waitFor(t, "two more checks of leaver", h.log, func() bool { return h.health("leaver").LastCheck.Sub(firstLeave) >= 900*time.Millisecond })
	if info := h.health("leaver"); info.LastOutput != "left one behind\n" {
		t.Errorf("status of leaver: %+v", info)
	}
	// 6. A check that cannot start fails.
	waitFor(t, "nocmd to be unhealthy", h.log, func() bool { return h.ps()["nocmd"].Health == "unhealthy" })
	if info := h.health("nocmd"); *info.LastExitCode != 127 || !strings.Contains(info.LastOutput, "could not start: ") {
		t.Errorf("status of nocmd: %+v", info)
	}
	// 7. Checks stop with their container: none runs while good is
	// stopped, however many hang's checks run meanwhile.
	if status, _, stderr := berth(t, "stop", "good"); status != 0 {
		t.Fatalf("stop good: %s", stderr)
	}
	marks := h.marks("good")
	if info := h.health("good"); info.Running || h.ps()["good"].Health != "" {
		t.Errorf("stopped good: %+v", info)
	}
	last := *h.health("hang").LastCheck
	waitFor(t, "three more checks of hang", h.log, func() bool { return h.health("hang").LastCheck.Sub(last) >= time.Second })
	if h.marks("good") != marks {
		t.Errorf("good's check ran %d times after good stopped", h.marks("good")-marks)
	}
	if status, _, stderr := berth(t, "start", "good"); status != 0 {
		t.Fatalf("start good: %s", stderr)
	}
	waitFor(t, "good to be healthy again", h.log, func() bool { return h.ps()["good"].Health == "healthy" })
	if h.marks("good") == marks {
		t.Error("good's checks did not start again")
	}
}

// marks counts the runs of name's check.
func (h *healthBoot) marks(name string) int {
	data, _ := os.ReadFile(filepath.Join(h.marksDir, name))
	return strings.Count(string(data), "checked\n")
}

// checksRunning counts berth's children running "sleep ARG".
func (h *healthBoot) checksRunning(arg string) int { return sleeps(arg, h.pid) }

// sleepsAnywhere counts the processes running "sleep ARG", whatever
// their parent: a check's child left behind is the container init's.
func sleepsAnywhere(arg string) int { return sleeps(arg, 0) }

// sleeps counts the processes running "sleep ARG" whose parent is
// parent, or any parent for 0.
func sleeps(arg string, parent int) int {
	n := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		stat, err := os.ReadFile(d + "/stat")
		cmdline, err2 := os.ReadFile(d + "/cmdline")
		if err != nil || err2 != nil || string(cmdline) != "sleep\x00"+arg+"\x00" {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if parent == 0 || len(f) > 1 && f[1] == strconv.Itoa(parent) {
			n++
		}
	}
	return n
}
