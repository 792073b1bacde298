package cli

import (
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
