package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStopBeforeHandler stops a container whose first process installs
// its SIGTERM handler only later (a script whose trap comes after a step
// the test releases): the kernel drops the stop signal sent before the
// trap. berth says so, sends the signal again once the trap is there,
// and the container stops by its trap (status 0), not by SIGKILL after
// its stop_timeout. A first process that never handles it (sleep) gets
// the same line and SIGKILL at the timeout.
func TestStopBeforeHandler(t *testing.T) {
	dir := t.TempDir()
	packBusybox(t, dir)
	gate := filepath.Join(dir, "gate")
	if err := os.Mkdir(gate, 0o755); err != nil {
		t.Fatal(err)
	}
	late, never := fmt.Sprintf("late%d", os.Getpid()), fmt.Sprintf("never%d", os.Getpid())
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, fmt.Sprintf(`
[[container]]
name = %q
image = "bb.tar.zst"
stop_timeout = "60s"
command = ["sh", "-c", "echo waiting; while [ ! -e /gate/go ]; do sleep 0.05; done; trap 'echo got TERM; exit 0' TERM; echo trapped; while :; do sleep 0.05; done"]

[[container.mount]]
source = %q
target = "/gate"
readonly = true

[[container]]
name = %q
image = "bb.tar.zst"
stop_timeout = "1s"
command = ["sleep", "1000"]
`, late, gate, never))
	log, _ := bootInDir(t, dir, cfg)
	waitFor(t, "the script to wait", log, func() bool { return strings.Contains(log.String(), late+" | waiting") })

	done := berthAsync(t, "stop", late)
	noHandler := "container " + late + ": its first process has no handler for SIGTERM"
	waitFor(t, "the no-handler line", log, func() bool { return strings.Contains(log.String(), noHandler) })
	if err := os.WriteFile(filepath.Join(gate, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.status != 0 || !strings.Contains(r.stdout, "stopped "+late+" (status 0)") {
		t.Errorf("stop %s: %d %q %s", late, r.status, r.stdout, r.stderr)
	}
	// The container's last output is read from its pipe after its exit
	// (boot/outputdrain.go): "got TERM" may reach the log just after the
	// stop has answered.
	for _, want := range []string{late + " | trapped", "container " + late + ": its first process handles SIGTERM now: sent again", late + " | got TERM"} {
		waitFor(t, fmt.Sprintf("the line %q", want), log, func() bool { return strings.Contains(log.String(), want) })
	}

	if s, o, e := berth(t, "stop", never); s != 0 || !strings.Contains(o, "stopped "+never) {
		t.Errorf("stop %s: %d %q %s", never, s, o, e)
	}
	out := log.String()
	for _, want := range []string{"container " + never + ": its first process has no handler for SIGTERM", "container " + never + " did not stop within 1s: SIGKILL"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(out, "container "+never+": its first process handles") {
		t.Errorf("sleep was said to handle SIGTERM:\n%s", out)
	}
}
