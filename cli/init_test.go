package cli

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"berth/internal/testutil"
)

// TestRunInit runs workloads under --init: statuses pass through (128+N
// for a signal), a missing command is still 127, orphans are reaped, and
// the workload cannot reach the init's binary or memory through /proc/1
// (with CAP_SYS_PTRACE it finds the sealed copy, not berth's file).
func TestRunInit(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	self, err := os.ReadFile(berthBin)
	if err != nil {
		t.Fatal(err)
	}
	// The orphan's parent ends at once; once the orphan has ended too (the
	// command substitution returns when it closes its stdout, which may
	// be before the kernel has made it a zombie), it is reaped, or stays
	// a zombie. The loop waits up to 5 s for it to go.
	const orphan = `pid=$(sh -c 'sleep 0.01 & echo $!'); i=0
		while [ -e /proc/$pid ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done
		if [ -e /proc/$pid ]; then echo "left $(grep State /proc/$pid/status)"; else echo reaped; fi`
	cases := []struct {
		name   string
		args   []string
		status int
		stdout string
	}{
		{"exit status", []string{"sh", "-c", "exit 7"}, 7, ""},
		{"killed by a signal", []string{"sh", "-c", "kill -TERM $$"}, 143, ""},
		{"not found", []string{"nosuch"}, 127, ""},
		{"orphans reaped", []string{"sh", "-c", orphan}, 0, "reaped\n"},
		{"PID 1 is the init", []string{"sh", "-c", `[ $$ != 1 ] && tr "\0" "\n" </proc/1/cmdline | head -1`}, 0, "berth-init\n"},
		{"no way to /proc/1/exe or mem", []string{"sh", "-c",
			"cat /proc/1/exe >/dev/null 2>&1 && echo read; echo x 2>/dev/null >>/proc/1/exe && echo wrote; " +
				"cat /proc/1/mem 2>/dev/null && echo mem; readlink /proc/1/exe || echo no link"}, 0, "no link\n"},
		{"user namespace", []string{"--userns", "sh", "-c", "kill -TERM $$"}, 143, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"run", "--init"}
			cmd := c.args
			if cmd[0] == "--userns" {
				args, cmd = append(args, cmd[0]), cmd[1:]
			}
			status, stdout, stderr := berth(t, append(append(args, rootfs, "--"), cmd...)...)
			if status != c.status || stdout != c.stdout {
				t.Fatalf("status %d stdout %q stderr %q; want %d %q", status, stdout, stderr, c.status, c.stdout)
			}
		})
	}
	t.Run("CAP_SYS_PTRACE sees the sealed copy", func(t *testing.T) {
		status, stdout, stderr := berth(t, "run", "--init", "--cap-add", "SYS_PTRACE", rootfs, "--", "sh", "-c",
			"readlink /proc/1/exe; echo x >>/proc/1/exe && echo wrote; cat /proc/1/exe >/exe.copy; wc -c </exe.copy")
		if status != 0 || !strings.HasPrefix(stdout, "/memfd:berth (deleted)\n") || strings.Contains(stdout, "wrote") {
			t.Fatalf("status %d stdout %q stderr %q", status, stdout, stderr)
		}
	})
	if now, err := os.ReadFile(berthBin); err != nil || string(now) != string(self) {
		t.Fatalf("berth's binary changed: %v", err)
	}
}

// TestRunInitForwardsSignals sends SIGTERM to berth run --init with a
// shell that sets no trap: as PID 1 it would ignore the signal, under the
// init it ends by it, and berth run reports 143.
func TestRunInitForwardsSignals(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	cmd := exec.Command(berthBin, "run", "--init", rootfs, "--", "sh", "-c", "echo ready; sleep 1000; echo not reached")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := r.ReadString(0)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 || rest != "" {
		t.Fatalf("exit %v, output %q: want status 143", err, rest)
	}
}

// TestBootInitStop stops two containers whose shell ignores SIGTERM as
// PID 1: without init the stop ends in berth's SIGKILL, with init = true
// the shell gets the signal and the container exits on it (143). berth
// exec works in the one under the init.
func TestBootInitStop(t *testing.T) {
	dir := t.TempDir()
	packBusybox(t, dir)
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, `
[[container]]
name = "bare"
image = "bb.tar.zst"
command = ["sh", "-c", "echo bare up; sleep 1000"]
stop_timeout = "1s"

[[container]]
name = "tini"
image = "bb.tar.zst"
init = true
command = ["sh", "-c", "echo tini up; sleep 1000"]
stop_timeout = "1m"
`)
	log, cmd := bootInDir(t, dir, cfg)
	for _, name := range []string{"bare", "tini"} {
		waitFor(t, name+" to run", log, func() bool { return strings.Contains(log.String(), name+" | "+name+" up") })
	}
	// berth exec reaches a container under the init as any other.
	if status, stdout, stderr := berth(t, "exec", "tini", "--", "sh", "-c", "head -c 10 /proc/1/cmdline; echo"); status != 0 || stdout != "berth-init\n" {
		t.Errorf("berth exec tini: %d %q %s", status, stdout, stderr)
	}
	want := map[string]string{"bare": "stopped bare (signal 9 (killed by berth's stop))", "tini": "stopped tini (status 143)"}
	for _, name := range []string{"bare", "tini"} {
		status, stdout, stderr := berth(t, "stop", name)
		if status != 0 || !strings.Contains(stdout, want[name]) {
			t.Errorf("stop %s: %d %q %s; want %q", name, status, stdout, stderr, want[name])
		}
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}
