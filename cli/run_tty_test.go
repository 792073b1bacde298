package cli

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"berth/internal/testutil"
)

// TestRunTTYSize: berth run -t makes the container's terminal of the size
// of berth's own before the command runs: stty size, the command's first
// look, prints it every time (it raced berth's resize, and often printed
// busybox's "stty: standard input", a terminal of 0 by 0). Both start
// paths: direct and through the init of a user namespace.
func TestRunTTYSize(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	ws := unix.Winsize{Row: 37, Col: 91}
	// It lost about one race in four: 30 runs, 5 of them in a user
	// namespace.
	for i := range 30 {
		args := []string{"run", "-t", rootfs, "--", "stty", "size"}
		if i >= 25 {
			args = append([]string{"run", "--userns"}, args[1:]...)
		}
		out, status := onTerminal(t, ws, "", args...)
		if status != 0 || out != "37 91\n" {
			t.Errorf("run %d, berth %v on a 37x91 terminal: status %d, output %q", i, args, status, out)
		}
	}
}

// reopenScript closes the command's terminal, opens it again as /dev/tty
// and writes more than a pty holds, then exits 7.
const reopenScript = `echo before; exec >&- 2>&- <&-; sleep 1; echo after > /dev/tty; ` +
	`for i in $(seq 2000); do echo line$i-xxxxxxxxxxxxxxxxxxxx; done > /dev/tty; exit 7`

// checkReopened checks a session of reopenScript: all of its output
// arrived and berth ended with its status.
func checkReopened(t *testing.T, what, out string, status int) {
	t.Helper()
	last := fmt.Sprintf("line%d-xxxxxxxxxxxxxxxxxxxx\n", 2000)
	if status != 7 || !strings.HasPrefix(out, "before\n") || !strings.Contains(out, "\nafter\n") || !strings.HasSuffix(out, last) {
		t.Errorf("%s: status %d (want 7), %d bytes of output:\n%s", what, status, len(out), lastBytes(out, 300))
	}
}

// TestRunTTYReopened: a command of berth run -t that closes its terminal
// (the pty master then reads EIO) and opens /dev/tty again goes on being
// relayed: the relay stopped at the first EIO, so later output was lost
// and the command blocked on the full pty, berth run with it.
func TestRunTTYReopened(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	out, status := onTerminal(t, unix.Winsize{}, "", "run", "-t", rootfs, "--", "sh", "-c", reopenScript)
	checkReopened(t, "berth run -t", out, status)
}

// TestExecTTYReopened: the same through berth exec -t, whose relay is
// berth run's.
func TestExecTTYReopened(t *testing.T) {
	bootForExec(t)
	out, status := onTerminal(t, unix.Winsize{}, "", "exec", "-t", "web", "--", "sh", "-c", reopenScript)
	checkReopened(t, "berth exec -t", out, status)
}
