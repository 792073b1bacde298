package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopperConfig runs a container whose PID 1 stops every other process
// of its PID namespace, over and over: an exec's child, once it has
// joined the namespace, is stopped before its execve.
const stopperConfig = `
[[container]]
name = "stopper"
image = "bb.tar.zst"
command = ["sh", "-c", "echo stopping; while :; do kill -STOP -1 2>/dev/null; done"]
stop_timeout = "1s"
`

// TestExecStoppedBeforeExecve: a container that stops berth exec's child
// before it execs holds that exec until its start timeout, which then
// fails with 125 and says why; berth answers other requests meanwhile
// (the start is off the supervisor loop).
func TestExecStoppedBeforeExecve(t *testing.T) {
	dir := t.TempDir()
	packBusybox(t, dir)
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, stopperConfig)
	log, boot := bootInDir(t, dir, cfg)
	waitFor(t, "the stopper to run", log, func() bool { return strings.Contains(log.String(), "stopper | stopping") })
	var out bytes.Buffer
	var ex *exec.Cmd
	var done chan struct{}
	// The stopper may miss the child's few hundred microseconds before
	// its execve (the machine is busy): then true runs, or is stopped
	// after its execve and killed here; the exec is tried again.
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			t.Fatal("the stopper never caught an exec's child before its execve")
		}
		out.Reset()
		ex = exec.Command(berthBin, "exec", "stopper", "--", "true")
		ex.Stdout, ex.Stderr = &out, &out
		if err := ex.Start(); err != nil {
			t.Fatal(err)
		}
		done = make(chan struct{})
		go func(ex *exec.Cmd, done chan struct{}) { ex.Wait(); close(done) }(ex, done)
		if execCaught(t, boot.Process.Pid, done) {
			break
		}
	}
	status, stdout, stderr := berth(t, "ps")
	select {
	case <-done:
		t.Fatalf("berth ps answered only once the exec had ended (%d %q %s): the exec held the supervisor loop", status, stdout, stderr)
	default:
	}
	if status != 0 || !strings.Contains(stdout, "stopper") {
		t.Errorf("berth ps while an exec waits: %d %q %s", status, stdout, stderr)
	}
	// The limit only keeps the test from hanging: it is no performance
	// check.
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		ex.Process.Kill()
		t.Fatalf("berth exec did not end; its output: %q", out.String())
	}
	if code := ex.ProcessState.ExitCode(); code != 125 || !strings.Contains(out.String(), "had not reached its execve") {
		t.Errorf("berth exec of a child stopped before its execve: %d %q, want 125 and why", code, out.String())
	}
}

// execCaught waits until a child of pid (berth boot: the exec's child) is
// stopped before its execve (true), or until the exec has ended, its
// child stopped after its execve killed (false).
func execCaught(t *testing.T, pid int, done <-chan struct{}) bool {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		select {
		case <-done:
			return false
		default:
		}
		child, comm := stoppedChild(pid)
		switch {
		case child == 0:
		case comm != "true":
			return true
		default:
			syscall.Kill(child, syscall.SIGKILL)
		}
	}
	t.Fatal("the exec neither ended nor was stopped")
	return false
}

// stoppedChild returns a child of pid that is stopped (state T), and
// its command name; 0 when there is none.
func stoppedChild(pid int) (int, string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		s := string(b)
		if strings.Contains(s, "\nState:\tT") && strings.Contains(s, "\nPPid:\t"+strconv.Itoa(pid)+"\n") {
			name, _, _ := strings.Cut(strings.TrimPrefix(s, "Name:\t"), "\n")
			return child, name
		}
	}
	return 0, ""
}
