package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/boot"
	"berth/internal/testutil"
)

const superviseConfig = `
[[container]]
name = "db"
image = "bb.tar.zst"
# sleep as PID 1 ignores SIGTERM: the stop ends in SIGKILL.
command = ["sh", "-c", "echo db up; exec sleep 1000"]
restart = "always"
stop_timeout = "1s"

[[container]]
name = "migrate"
image = "bb.tar.zst"
oneshot = true
after = ["db"]
command = ["sh", "-c", "echo migrated"]

[[container]]
name = "app"
image = "bb.tar.zst"
after = ["migrate"]
stop_signal = "SIGUSR1"
stop_timeout = "5s"
env = ["VERSION=1"]
command = ["sh", "-c", "trap 'echo app got USR1; exit 0' USR1; echo app $VERSION up; while :; do sleep 0.05; done"]

[[container]]
name = "crash"
image = "bb.tar.zst"
restart = "on-failure"
max_restarts = 3
restart_window = "1m"
command = ["sh", "-c", "echo crashing; exit 1"]
`

// bootLog collects berth boot's console output.
type bootLog = testutil.SyncBuffer

// bootInDir runs berth boot with the config file cfg, its state and
// control socket in dir (BERTH_SOCKET names it) until the test ends, and
// logs its output if the test failed.
func bootInDir(t *testing.T, dir, cfg string) (*bootLog, *exec.Cmd) {
	t.Helper()
	log := &bootLog{}
	cmd := bootCommand(t, dir, cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("berth boot:\n%s", log.String())
		}
	})
	return log, cmd
}

// bootCommand is berth boot with the config file cfg, its state and
// control socket in dir, which BERTH_SOCKET names for the test.
func bootCommand(t *testing.T, dir, cfg string) *exec.Cmd {
	t.Helper()
	sock := filepath.Join(dir, "berth.sock")
	t.Setenv("BERTH_SOCKET", sock)
	return exec.Command(berthBin, "boot", "--config", cfg, "--state", filepath.Join(dir, "state"), "--socket", sock)
}

// packBusybox packs a busybox tree into DIR/bb.tar.zst.
func packBusybox(t *testing.T, dir string) {
	t.Helper()
	if status, _, stderr := berth(t, "image", "pack", testutil.BusyboxRootfs(t), "-o", filepath.Join(dir, "bb.tar.zst")); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
}

// waitFor polls cond for up to 2 minutes (a hang guard, not a timing
// check: steps took near 20 s, its old bound, on a loaded machine).
func waitFor(t *testing.T, what string, log *bootLog, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s; log:\n%s", what, log.String())
}

// TestBootSupervision runs berth boot on this host with dependencies,
// restart policies and a control socket, and drives it as an operator
// would: ps, logs, stop, start, restart, reload, then SIGTERM.
func TestBootSupervision(t *testing.T) {
	dir := t.TempDir()
	packBusybox(t, dir)
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, superviseConfig)
	log, cmd := bootInDir(t, dir, cfg)

	ps := func() map[string]boot.Process {
		status, stdout, _ := berth(t, "ps", "--json")
		procs := map[string]boot.Process{}
		if status != 0 {
			return procs
		}
		var list []boot.Process
		json.Unmarshal([]byte(stdout), &list)
		for _, p := range list {
			procs[p.Name] = p
		}
		return procs
	}
	// 1. Ordering: db runs, then the oneshot migrate, then app.
	waitFor(t, "app to run", log, func() bool {
		return ps()["app"].State == "running" && strings.Contains(log.String(), "container app started")
	})
	out := log.String()
	iDB, iMig, iApp := strings.Index(out, "container db started"), strings.Index(out, "container migrate started"), strings.Index(out, "container app started")
	iMigDone := strings.Index(out, "container migrate exited with status 0")
	if !(iDB < iMig && iMig < iMigDone && iMigDone < iApp) || iDB < 0 {
		t.Errorf("start order wrong: db %d, migrate %d (done %d), app %d", iDB, iMig, iMigDone, iApp)
	}
	// 2. The crash loop backs off and gives up after max_restarts.
	// The console is written from a queue of its own: a line may come
	// after the state it tells of.
	waitFor(t, "crash to give up", log, func() bool {
		return ps()["crash"].State == "failed" &&
			strings.Contains(log.String(), "container crash failed: restarted 3 times within 1m0s (max_restarts = 3): giving up")
	})
	for _, w := range []string{"container crash: restart 1 in 100ms", "restart 2 in 200ms", "restart 3 in 400ms"} {
		if !strings.Contains(log.String(), w) {
			t.Errorf("log lacks %q", w)
		}
	}
	if p := ps()["crash"]; p.Restarts != 3 {
		t.Errorf("crash restarts = %d, want 3", p.Restarts)
	}
	// 3. ps as a table, logs.
	if status, stdout, _ := berth(t, "ps"); status != 0 || !strings.Contains(stdout, "NAME") || !strings.Contains(stdout, "app") {
		t.Errorf("ps table:\n%s", stdout)
	}
	if status, stdout, stderr := berth(t, "logs", "-n", "1", "app"); status != 0 || stdout != "app 1 up\n" {
		t.Errorf("logs -n 1 app: %d %q %s", status, stdout, stderr)
	}
	if status, _, stderr := berth(t, "logs", "nosuch"); status == 0 || !strings.Contains(stderr, `no container "nosuch"`) {
		t.Errorf("logs of an unknown container: %d %s", status, stderr)
	}
	// 4. stop uses the stop signal and returns once the container has
	// stopped, so start can follow at once; restart waits for the start.
	// -t past its range (the longest time.Duration, in seconds) is
	// refused as a bad flag and changes nothing; at its edge it is taken.
	if status, _, stderr := berth(t, "stop", "-t", "9223372037", "app"); status != 2 || !strings.Contains(stderr, "-t 9223372037: want 0 to 9223372036 seconds") {
		t.Errorf("stop -t 9223372037: %d %s", status, stderr)
	}
	if p := ps()["app"]; p.State != "running" {
		t.Errorf("after a refused stop, ps says %+v", p)
	}
	waitFor(t, "app's trap", log, func() bool { return strings.Contains(log.String(), "app | app 1 up") })
	if status, stdout, stderr := berth(t, "stop", "app"); status != 0 || !strings.Contains(stdout, "stopped app (status 0)") {
		t.Fatalf("stop: %d %q %s", status, stdout, stderr)
	}
	if p := ps()["app"]; p.State != "stopped" || p.ExitCode == nil || *p.ExitCode != 0 || p.Started != nil {
		t.Errorf("after stop returned, ps says %+v", p)
	}
	waitFor(t, "app to get its stop_signal", log, func() bool { return strings.Contains(log.String(), "app | app got USR1") })
	if status, stdout, stderr := berth(t, "start", "app"); status != 0 {
		t.Fatalf("start right after stop: %d %q %s", status, stdout, stderr)
	}
	// The kernel drops a signal sent to a PID namespace's init before
	// it has a handler; berth sends it again once the trap is set
	// (TestStopBeforeHandler). Here the restart waits for the script's
	// line, so its stop signal comes after the trap.
	waitFor(t, "app to run again", log, func() bool {
		return ps()["app"].State == "running" && strings.Count(log.String(), "app | app 1 up") == 2
	})
	if status, stdout, stderr := berth(t, "restart", "-t", "9223372036", "app"); status != 0 || !strings.Contains(stdout, "restarted app: pid") {
		t.Fatalf("restart -t 9223372036 app: %d %q %s", status, stdout, stderr)
	}
	waitFor(t, "app's stop signal of the restart", log, func() bool { return strings.Count(log.String(), "app | app got USR1") == 2 })
	// -t 0: SIGKILL at once (db ignores its SIGTERM), still waited for.
	if status, stdout, stderr := berth(t, "restart", "-t", "0", "db"); status != 0 || !strings.Contains(stdout, "restarted db: pid") {
		t.Fatalf("restart -t 0 db: %d %q %s", status, stdout, stderr)
	}
	if p := ps()["db"]; p.State != "running" || p.ExitSignal != "SIGKILL" || *p.ExitCode != 137 {
		t.Errorf("after restart -t 0, ps says %+v", p)
	}
	if status, stdout, _ := berth(t, "stop", "crash"); status != 0 || !strings.Contains(stdout, "crash is not running (failed") {
		t.Errorf("stop of a failed container: %d %q", status, stdout)
	}
	// ps --json of an exited oneshot: no start time, its exit code.
	if p := ps()["migrate"]; p.Started != nil || p.ExitCode == nil || *p.ExitCode != 0 {
		t.Errorf("oneshot in ps --json: %+v", p)
	}
	// berth status shows berth's own uptime beside the machine's.
	if status, stdout, _ := berth(t, "status"); status != 0 || !strings.Contains(stdout, "(berth), ") {
		t.Errorf("status:\n%s", stdout)
	}
	// 5. reload: only the changed container restarts; an invalid config is refused.
	dbPid := ps()["db"].Pid
	write(t, cfg, strings.Replace(superviseConfig, "VERSION=1", "VERSION=2", 1))
	if status, _, stderr := berth(t, "reload"); status != 0 {
		t.Fatalf("reload: %s\n%s", stderr, log.String())
	}
	waitFor(t, "app version 2", log, func() bool { return strings.Contains(log.String(), "app | app 2 up") })
	if ps()["db"].Pid != dbPid {
		t.Error("reload restarted db, whose definition did not change")
	}
	write(t, cfg, superviseConfig+"\n[[container]]\nname = \"bad\"\n")
	if status, _, stderr := berth(t, "reload"); status == 0 || !strings.Contains(stderr, "reload refused") || !strings.Contains(stderr, "missing image") {
		t.Errorf("invalid reload: %d %s", status, stderr)
	}
	if ps()["db"].Pid != dbPid {
		t.Error("a refused reload touched db")
	}
	// 6. SIGTERM: containers stopped in reverse dependency order.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	out = log.String()
	iApp, iDB = strings.Index(out, "stopping container app"), strings.Index(out, "stopping container db")
	if iApp < 0 || iDB < 0 || iApp > iDB {
		t.Errorf("stop order: app at %d, db at %d; want app first", iApp, iDB)
	}
	for _, w := range []string{"got terminated: shutting down (reboot)", "container app stopped in",
		"container db did not stop within 1s: SIGKILL", "container db stopped in"} {
		if !strings.Contains(out, w) {
			t.Errorf("log lacks %q", w)
		}
	}
	sock := filepath.Join(dir, "berth.sock")
	if _, err := os.Lstat(sock); err == nil {
		t.Errorf("the control socket %s is left behind", sock)
	}
	if t.Failed() {
		t.Logf("log:\n%s", out)
	}
}

// TestBootOneInstance: a second berth boot on the same state directory, or
// on the same control socket, says another berth runs and exits 1,
// touching nothing of the first's.
func TestBootOneInstance(t *testing.T) {
	dir := t.TempDir()
	packBusybox(t, dir)
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, "[[container]]\nname = \"one\"\nimage = \"bb.tar.zst\"\ncommand = [\"sleep\", \"1000\"]\n")
	state, sock := filepath.Join(dir, "state"), filepath.Join(dir, "berth.sock")
	log := &bootLog{}
	first := exec.Command(berthBin, "boot", "--config", cfg, "--state", state, "--socket", sock)
	first.Stdout, first.Stderr = log, log
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	t.Setenv("BERTH_SOCKET", sock)
	waitFor(t, "one to run", log, func() bool {
		_, stdout, _ := berth(t, "ps")
		return strings.Contains(stdout, "running")
	})
	pidOf := func() string {
		_, stdout, _ := berth(t, "ps", "--json")
		var list []boot.Process
		json.Unmarshal([]byte(stdout), &list)
		if len(list) != 1 || list[0].State != "running" {
			return "not running: " + stdout
		}
		return fmt.Sprint(list[0].Pid, list[0].Started)
	}
	before := pidOf()
	for _, args := range [][]string{
		{"--state", state, "--socket", filepath.Join(dir, "other.sock")},
		{"--state", filepath.Join(dir, "state2"), "--socket", sock},
	} {
		status, stdout, stderr := berth(t, append([]string{"boot", "--config", cfg}, args...)...)
		if status != 1 || !strings.Contains(stdout+stderr, "another berth") {
			t.Errorf("second berth boot %v: status %d, output %s%s", args, status, stdout, stderr)
		}
	}
	if after := pidOf(); after != before {
		t.Errorf("the second berth changed the first's containers:\n%s\n%s", before, after)
	}
	first.Process.Signal(syscall.SIGTERM)
	first.Wait()
}
