package cli

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/testutil"
)

// TestRunForwardsSignals sends SIGTERM to berth run and checks the
// container's first process got it: its trap runs and its status is
// berth's.
func TestRunForwardsSignals(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	cmd := exec.Command(berthBin, "run", rootfs, "--", "sh", "-c",
		`trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done`)
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
	rest, _ := io.ReadAll(r)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(rest), "got TERM") {
		t.Fatalf("exit %v, output %q: want status 3 after the trap ran", err, rest)
	}
}

// TestRunTTY runs berth run -t on a pseudo-terminal, as a user at a
// terminal would, and checks the command got a terminal of its own.
func TestRunTTY(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command(berthBin, "run", "-t", rootfs, "--", "sh", "-c", "tty; test -t 0 && echo stdin-is-a-terminal; echo uid=$(id -u)")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&buf, master); close(done) }()
	if err := cmd.Wait(); err != nil {
		t.Errorf("berth run -t: %v", err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	out := strings.ReplaceAll(buf.String(), "\r", "")
	for _, w := range []string{"/dev/pts/0\n", "stdin-is-a-terminal\n", "uid=0\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

// openPTY opens a new pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}
