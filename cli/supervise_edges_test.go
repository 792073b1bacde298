package cli

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bootConfig runs berth boot, as bootInDir does, on config (with
// {{DIR}} replaced by its directory, where bb.tar.zst is packed) and
// returns the directory, the log and the command.
func bootConfig(t *testing.T, config string) (string, *bootLog, *exec.Cmd) {
	t.Helper()
	dir := t.TempDir()
	packBusybox(t, dir)
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, strings.ReplaceAll(config, "{{DIR}}", dir))
	log, cmd := bootInDir(t, dir, cfg)
	return dir, log, cmd
}

// TestShutdownTimesEach: containers stopped in one round are timed each
// from the round's start to its own stop, not to the end of the wait
// for the slower ones before it (stop order is the reverse of the
// config's: slow, which ignores SIGTERM, is waited for first).
func TestShutdownTimesEach(t *testing.T) {
	_, log, cmd := bootConfig(t, `
[[container]]
name = "fast"
image = "bb.tar.zst"
command = ["sh", "-c", "echo fast up; exec sleep 1000"]
stop_signal = "SIGKILL"

[[container]]
name = "slow"
image = "bb.tar.zst"
command = ["sh", "-c", "echo slow up; exec sleep 1000"]
stop_timeout = "3s"
`)
	waitFor(t, "both to run", log, func() bool {
		return strings.Contains(log.String(), "fast | fast up") && strings.Contains(log.String(), "slow | slow up")
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	took := map[string]time.Duration{}
	for _, line := range strings.Split(log.String(), "\n") {
		for _, name := range []string{"fast", "slow"} {
			if _, rest, ok := strings.Cut(line, "container "+name+" stopped in "); ok {
				d, err := time.ParseDuration(strings.TrimSpace(rest))
				if err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				took[name] = d
			}
		}
	}
	if took["slow"] < 3*time.Second || took["fast"] >= 3*time.Second {
		t.Errorf("stopped in: fast %s, slow %s; want slow after its 3s stop_timeout and fast before it\n%s", took["fast"], took["slow"], log.String())
	}
}

// TestStopDuringRestart: a stop asked while a restart is stopping the
// container wins, as the last request: the container stays stopped, the
// stop says so, and the restart's client is told it was cancelled.
func TestStopDuringRestart(t *testing.T) {
	_, log, _ := bootConfig(t, `
[[container]]
name = "s"
image = "bb.tar.zst"
command = ["sh", "-c", "echo s up; exec sleep 1000"]
stop_timeout = "5s"
`)
	waitFor(t, "s to run", log, func() bool { return strings.Contains(log.String(), "s | s up") })
	restarted := berthAsync(t, "restart", "s")
	waitFor(t, "the restart's stop", log, func() bool { return strings.Contains(log.String(), "stopping container s") })
	if status, stdout, stderr := berth(t, "stop", "-t", "0", "s"); status != 0 || !strings.Contains(stdout, "stopped s") {
		t.Errorf("stop during the restart: %d %q %s", status, stdout, stderr)
	}
	r := <-restarted
	if r.status == 0 || !strings.Contains(r.stderr, "s: the restart was cancelled by a stop") {
		t.Errorf("the restart: %d %q %q", r.status, r.stdout, r.stderr)
	}
	time.Sleep(300 * time.Millisecond) // a start that followed would be under way
	if _, stdout, _ := berth(t, "ps", "--json"); !strings.Contains(stdout, `"state": "stopped"`) || strings.Count(log.String(), "s | s up") != 1 {
		t.Errorf("after the stop: %s\n%s", stdout, log.String())
	}
}

// TestBootLibcSignals: signals 32 and 34, which Go keeps for C libraries
// and does not let os/signal catch, no longer end berth boot (they did,
// at once, with its containers left running), nor does 33; a
// container's processes get them at their default, not ignored, with or
// without a user namespace.
func TestBootLibcSignals(t *testing.T) {
	_, log, cmd := bootConfig(t, `
[[container]]
name = "sig"
image = "bb.tar.zst"
command = ["sh", "-c", "grep SigIgn /proc/self/status; exec sleep 1000"]
stop_signal = "SIGKILL"

[[container]]
name = "sigu"
image = "bb.tar.zst"
user_ns = true
command = ["sh", "-c", "grep SigIgn /proc/self/status; exec sleep 1000"]
stop_signal = "SIGKILL"
`)
	waitFor(t, "sig and sigu to run", log, func() bool {
		return strings.Contains(log.String(), "sig | SigIgn:") && strings.Contains(log.String(), "sigu | SigIgn:")
	})
	for _, sig := range []syscall.Signal{32, 33, 34} {
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if status, stdout, stderr := berth(t, "ps"); status != 0 || !strings.Contains(stdout, "running") {
		t.Fatalf("after signals 32-34: ps %d %q %s", status, stdout, stderr)
	}
	for _, name := range []string{"sig", "sigu"} { // direct start, user namespace
		_, line, _ := strings.Cut(log.String(), name+" | SigIgn:")
		line, _, _ = strings.Cut(line, "\n")
		mask, err := strconv.ParseUint(strings.TrimSpace(line), 16, 64)
		if err != nil || mask&(1<<31|1<<33) != 0 {
			t.Errorf("%s's SigIgn is %q (%v): 32 or 34 ignored", name, line, err)
		}
	}
}

// TestOutputRate: berth takes a container's output at about 10,000
// short lines a second after a second's burst (boot/outputrate.go);
// past that the container's writes wait, and nothing is lost. 50,000
// lines written at once reach the log file over at least 4 s (a lower
// bound the limiter sets, whatever the machine's speed), all of them.
func TestOutputRate(t *testing.T) {
	dir, log, _ := bootConfig(t, `
[[container]]
name = "y"
image = "bb.tar.zst"
command = ["sh", "-c", "yes | head -n 50000; echo end; exec sleep 1000"]
stop_signal = "SIGKILL"
log_console = false
log_file = "{{DIR}}/logs/y.log"
log_file_size = "16M"
`)
	logFile := filepath.Join(dir, "logs", "y.log")
	var data []byte
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if data, _ = os.ReadFile(logFile); strings.HasSuffix(string(data), " end\n") {
			break
		}
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 50001 {
		t.Fatalf("%d lines in the log file, want 50,001\n%s", len(lines), log.String())
	}
	stamp := func(l string) time.Time {
		ts, _, _ := strings.Cut(l, " ")
		v, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		return v
	}
	if took := stamp(lines[50000]).Sub(stamp(lines[0])); took < 3900*time.Millisecond {
		t.Errorf("50,000 lines taken in %s: want at least 4 s at 10,000 a second after a burst of 10,000", took)
	}
}

// TestShutdownAnswersClients: while the shutdown waits for a container
// to stop, a client is told at once that berth is shutting down (it was
// left waiting for the whole shutdown), and a container that exits by
// itself meanwhile is not restarted, nor logged as about to be.
func TestShutdownAnswersClients(t *testing.T) {
	_, log, cmd := bootConfig(t, `
[[container]]
name = "crashy"
image = "bb.tar.zst"
command = ["sh", "-c", "echo crashy up; sleep 0.2; exit 1"]
restart = "always"
restart_delay = "0s"

[[container]]
name = "slow"
image = "bb.tar.zst"
after = ["crashy"]
command = ["sh", "-c", "echo slow up; exec sleep 1000"]
stop_timeout = "3s"
`)
	waitFor(t, "slow to run", log, func() bool { return strings.Contains(log.String(), "slow | slow up") })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the shutdown", log, func() bool { return strings.Contains(log.String(), "stopping container slow") })
	status, stdout, stderr := berth(t, "ps")
	if status == 0 || !strings.Contains(stderr, "berth is shutting down") {
		t.Errorf("ps during the shutdown: %d %q %q", status, stdout, stderr)
	}
	cmd.Wait()
	_, after, _ := strings.Cut(log.String(), "got terminated")
	if strings.Contains(after, "container crashy: restart") || strings.Count(after, "crashy | crashy up") > 1 {
		t.Errorf("crashy was restarted, or said to be, during the shutdown:\n%s", after)
	}
}

// TestSecondShutdownHurries: a shutdown waiting on containers that ignore
// their stop signal under a long stop_timeout is cut short by a second
// ask — a shutdown signal (a UPS's SIGPWR) or berth poweroff: those left
// are killed at once, the later rounds' too, and berth boot ends. A
// container SIGKILL does not end (frozen, as a process stuck on a dead
// disk) is given up on hurryWait (5 s) after the ask, not after its
// stop_timeout.
func TestSecondShutdownHurries(t *testing.T) {
	const config = `
[[container]]
name = "hdb"
image = "bb.tar.zst"
command = ["sh", "-c", "trap '' TERM; echo hdb up; while :; do sleep 1; done"]
stop_timeout = "1h"

[[container]]
name = "hweb"
image = "bb.tar.zst"
after = ["hdb"]
command = ["sh", "-c", "trap '' TERM; echo hweb up; while :; do sleep 1; done"]
stop_timeout = "1h"
`
	for _, tc := range []struct {
		name, want string
		frozen     bool // hweb frozen: SIGKILL does not end it
		again      func(t *testing.T, cmd *exec.Cmd, dir string)
	}{
		{"SIGPWR", "got SIGPWR again during the shutdown: the containers left are killed now (SIGKILL)", false, func(t *testing.T, cmd *exec.Cmd, _ string) {
			if err := cmd.Process.Signal(syscall.SIGPWR); err != nil {
				t.Fatal(err)
			}
		}},
		{"SIGPWR, hweb frozen", "got SIGPWR again during the shutdown: the containers left are killed now (SIGKILL)", true, func(t *testing.T, cmd *exec.Cmd, _ string) {
			if err := cmd.Process.Signal(syscall.SIGPWR); err != nil {
				t.Fatal(err)
			}
		}},
		{"poweroff", "poweroff asked for again during the shutdown: the containers left are killed now (SIGKILL)", false, func(t *testing.T, _ *exec.Cmd, dir string) {
			status, _, stderr := berth(t, "poweroff", "--socket", filepath.Join(dir, "berth.sock"))
			if status != 1 || !strings.Contains(stderr, "berth is shutting down: containers are being stopped; those left are killed now") {
				t.Errorf("berth poweroff again: %d %q", status, stderr)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, log, cmd := bootConfig(t, config)
			waitFor(t, "both to run", log, func() bool {
				return strings.Contains(log.String(), "hdb | hdb up") && strings.Contains(log.String(), "hweb | hweb up")
			})
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "web's stop", log, func() bool {
				return strings.Contains(log.String(), "stopping container hweb (SIGTERM, SIGKILL after 1h0m0s)")
			})
			if tc.frozen {
				freeze(t, "hweb")
			}
			tc.again(t, cmd, dir)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatalf("berth boot still waits a minute after the second ask:\n%s", log.String())
			}
			wants := []string{tc.want, "stopping container hdb (SIGTERM, SIGKILL after 0s)", "container hdb killed by berth's stop (SIGKILL)"}
			if tc.frozen {
				wants = append(wants, "container hweb did not stop")
			} else {
				wants = append(wants, "container hweb killed by berth's stop (SIGKILL)")
			}
			for _, want := range wants {
				if !strings.Contains(log.String(), want) {
					t.Errorf("no %q in:\n%s", want, log.String())
				}
			}
		})
	}
}

// TestJSONErrors: with --json, a refusal (no such container, nothing to
// roll back to) or no berth at all is JSON on stdout too, {"error": …}
// on one line (as stats -f and logs write theirs), with its line on
// stderr and exit 1; a script reading stdout gets an answer either way.
func TestJSONErrors(t *testing.T) {
	dir, log, _ := bootConfig(t, `
[[container]]
name = "jsonerr"
image = "bb.tar.zst"
command = ["sh", "-c", "echo up; exec sleep 1000"]
`)
	waitFor(t, "jsonerr to run", log, func() bool { return strings.Contains(log.String(), "jsonerr | up") })
	sock := filepath.Join(dir, "berth.sock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"stop", "--json", "--socket", sock, "nosuch"}, `no container "nosuch"`},
		{[]string{"restart", "--json", "--socket", sock, "nosuch"}, `no container "nosuch"`},
		{[]string{"rollback", "--json", "--socket", sock}, "no previous generation"},
		{[]string{"stats", "--json", "--socket", sock, "nosuch"}, `nosuch`},
		{[]string{"ps", "--json", "--socket", filepath.Join(dir, "none.sock")}, "connect to berth at"},
		{[]string{"poweroff", "--json", "--socket", filepath.Join(dir, "none.sock")}, "connect to berth at"},
		{[]string{"logs", "--json", "--socket", sock, "nosuch"}, `no container "nosuch"`},
		{[]string{"logs", "--json", "--socket", filepath.Join(dir, "none.sock"), "x"}, "connect to berth at"},
		{[]string{"stats", "-f", "--json", "--socket", filepath.Join(dir, "none.sock")}, "connect to berth at"},
	} {
		status, stdout, stderr := berth(t, tc.args...)
		var got struct {
			Error string `json:"error"`
		}
		oneLine := strings.Count(stdout, "\n") == 1 && strings.HasSuffix(stdout, "\n")
		if err := json.Unmarshal([]byte(stdout), &got); status != 1 || err != nil || !oneLine || !strings.Contains(got.Error, tc.want) || !strings.Contains(stderr, tc.want) {
			t.Errorf("berth %s: status %d, stdout %q (%v), stderr %q; want exit 1 and %q in JSON and on stderr", strings.Join(tc.args, " "), status, stdout, err, stderr, tc.want)
		}
	}
}

// TestLogsLineCounts: berth logs -n N at its edges: 0 prints none (with
// -f, only the lines to come, as tail -n 0 -f), 1 the last, no -n all,
// and a negative N is a usage error.
func TestLogsLineCounts(t *testing.T) {
	dir, log, _ := bootConfig(t, `
[[container]]
name = "logn"
image = "bb.tar.zst"
command = ["sh", "-c", "echo old 1; echo old 2; until [ -e /tmp/go ]; do sleep 0.1; done; while :; do echo new; sleep 0.2; done"]
`)
	waitFor(t, "logn's first lines", log, func() bool { return strings.Contains(log.String(), "logn | old 2") })
	sock := filepath.Join(dir, "berth.sock")
	for _, tc := range []struct {
		n      []string
		status int
		out    string
	}{
		{nil, 0, "old 1\nold 2\n"},
		{[]string{"-n", "1"}, 0, "old 2\n"},
		{[]string{"-n", "0"}, 0, ""},
		{[]string{"-n", "-1"}, 2, ""},
	} {
		args := append(append([]string{"logs", "--socket", sock}, tc.n...), "logn")
		if status, stdout, stderr := berth(t, args...); status != tc.status || stdout != tc.out {
			t.Errorf("berth %s: %d %q %q, want %d %q", strings.Join(args, " "), status, stdout, stderr, tc.status, tc.out)
		}
	}
	// -n 0 -f: the lines to come (logn now says "new" every 0.2 s), none
	// of those before.
	if status, _, stderr := berth(t, "exec", "--socket", sock, "logn", "--", "touch", "/tmp/go"); status != 0 {
		t.Fatalf("exec touch: %d %s", status, stderr)
	}
	cmd := exec.Command(berthBin, "logs", "--socket", sock, "-f", "-n", "0", "logn")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	defer func() { stop.Stop(); cmd.Process.Kill(); cmd.Wait() }()
	first, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || first != "new\n" {
		t.Errorf("berth logs -f -n 0: first line %q (%v), want \"new\"", first, err)
	}
}

// TestRestartDuringShutdown: a berth restart waiting for its container's
// start when the shutdown begins is told the restart was cancelled, not
// left until berth ends.
func TestRestartDuringShutdown(t *testing.T) {
	dir, log, cmd := bootConfig(t, `
[[container]]
name = "rs"
image = "bb.tar.zst"
command = ["sh", "-c", "trap '' TERM; echo rs up; while :; do sleep 1; done"]
stop_timeout = "3s"
`)
	waitFor(t, "rs to run", log, func() bool { return strings.Contains(log.String(), "rs | rs up") })
	type result struct {
		status int
		stderr string
	}
	restarted := make(chan result, 1)
	go func() {
		status, _, stderr := berth(t, "restart", "--socket", filepath.Join(dir, "berth.sock"), "rs")
		restarted <- result{status, stderr}
	}()
	waitFor(t, "the restart's stop", log, func() bool { return strings.Contains(log.String(), "stopping container rs") })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := <-restarted
	if r.status != 1 || !strings.Contains(r.stderr, "rs: the restart was cancelled by the shutdown") {
		t.Errorf("the restart: %d %q", r.status, r.stderr)
	}
}

// freeze moves the processes of berth's container name into a v1
// freezer cgroup of the test's and freezes them: SIGKILL is then held
// until they are thawed, when the test ends.
func freeze(t *testing.T, name string) {
	t.Helper()
	procs, err := os.ReadFile("/sys/fs/cgroup/pids/berth/" + name + "/cgroup.procs")
	if err != nil {
		t.Fatalf("needs the v1 pids controller: %v", err)
	}
	dir := "/sys/fs/cgroup/freezer/berth-test-" + name
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("needs the v1 freezer: %v", err)
	}
	t.Cleanup(func() {
		os.WriteFile(dir+"/freezer.state", []byte("THAWED"), 0)
		for deadline := time.Now().Add(time.Minute); os.Remove(dir) != nil && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
	})
	for _, pid := range strings.Fields(string(procs)) {
		if err := os.WriteFile(dir+"/cgroup.procs", []byte(pid), 0); err != nil {
			t.Fatalf("move %s to the freezer: %v", pid, err)
		}
	}
	if err := os.WriteFile(dir+"/freezer.state", []byte("FROZEN"), 0); err != nil {
		t.Fatal(err)
	}
}

// TestStopTimeoutLogged: the SIGKILL's log line gives the timeout the stop
// had — berth stop -t 1's — not the container's stop_timeout.
func TestStopTimeoutLogged(t *testing.T) {
	dir, log, _ := bootConfig(t, `
[[container]]
name = "slowstop"
image = "bb.tar.zst"
command = ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"]
stop_timeout = "1h"
`)
	waitFor(t, "slowstop to run", log, func() bool { return strings.Contains(log.String(), "slowstop | up") })
	if status, _, stderr := berth(t, "stop", "--socket", filepath.Join(dir, "berth.sock"), "-t", "1", "slowstop"); status != 0 {
		t.Fatalf("stop: %d %s", status, stderr)
	}
	if !strings.Contains(log.String(), "container slowstop did not stop within 1s: SIGKILL") {
		t.Errorf("log:\n%s", log.String())
	}
}
