package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// stopperConfig runs a container whose PID 1 stops every other process
// of its PID namespace, over and over: an exec's child, once it has
// joined the namespace, is stopped before its execve.
const stopperConfig = `
[[container]]
name = "stopper"
image = "bb.tar.zst"
command = ["sh", "-c", "while :; do kill -STOP -1 2>/dev/null; done"]
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
	waitFor(t, "the stopper to run", log, func() bool { return strings.Contains(log.String(), "container stopper started") })
	var out bytes.Buffer
	ex := exec.Command(berthBin, "exec", "stopper", "--", "true")
	ex.Stdout, ex.Stderr = &out, &out
	if err := ex.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { ex.Wait(); close(done) }()
	waitFor(t, "the exec's child to be stopped", log, func() bool { return stoppedChild(boot.Process.Pid) })
	status, stdout, stderr := berth(t, "ps")
	select {
	case <-done:
		t.Fatalf("berth ps answered only once the exec had ended (%d %q %s): the exec held the supervisor loop", status, stdout, stderr)
	default:
	}
	if status != 0 || !strings.Contains(stdout, "stopper") {
		t.Errorf("berth ps while an exec waits: %d %q %s", status, stdout, stderr)
	}
	<-done
	if code := ex.ProcessState.ExitCode(); code != 125 || !strings.Contains(out.String(), "had not reached its execve") {
		t.Errorf("berth exec of a child stopped before its execve: %d %q, want 125 and why", code, out.String())
	}
}

// stoppedChild reports whether a child of pid is stopped (state T).
func stoppedChild(pid int) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		s := string(b)
		if strings.Contains(s, "\nState:\tT") && strings.Contains(s, "\nPPid:\t"+strconv.Itoa(pid)+"\n") {
			return true
		}
	}
	return false
}
