package cli

import (
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/testutil"
)

// The workload of a container started without a terminal gets a
// session of its own: it must not hold the terminal berth was started
// from as its controlling terminal, where it could read what is typed
// and push input into it (TIOCSTI), to run on the host once berth has
// exited. /dev/tty names that terminal: opening it must fail.
const ttyProbe = `read line; echo got=$line; echo escaped > /dev/tty; echo tty=$?`

// runUnderTerminal runs berth with args, a new terminal as its
// controlling terminal and stdio, types input into it, and returns what
// the terminal showed.
func runUnderTerminal(t *testing.T, input string, args ...string) string {
	t.Helper()
	out, _ := onTerminal(t, unix.Winsize{}, input, args...)
	return out
}

// onTerminal is runUnderTerminal on a terminal of size ws; it returns
// berth's exit status too.
func onTerminal(t *testing.T, ws unix.Winsize, input string, args ...string) (string, int) {
	t.Helper()
	master, slave := openPTY(t)
	defer master.Close()
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &ws); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(berthBin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	term := readPTY(master)
	master.Write([]byte(input))
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(60 * time.Second): // a hang guard
		cmd.Process.Kill()
		<-waited
		t.Fatalf("berth %v did not end; the terminal showed:\n%s", args, lastBytes(term.String(), 500))
	}
	return strings.ReplaceAll(term.end(t), "\r", ""), cmd.ProcessState.ExitCode()
}

// lastBytes is the end of s, at most n bytes of it.
func lastBytes(s string, n int) string { return s[max(0, len(s)-n):] }

// TestRunOwnSession: berth run without -t, from a terminal, with and
// without a user namespace: the workload reads its stdin (the terminal)
// but cannot open the terminal as its own.
func TestRunOwnSession(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	for _, extra := range [][]string{nil, {"--userns"}} {
		args := append(append([]string{"run"}, extra...), rootfs, "--", "sh", "-c", ttyProbe)
		out := runUnderTerminal(t, "typed\n", args...)
		if !strings.Contains(out, "got=typed\n") || !strings.Contains(out, "tty=1\n") || !strings.Contains(out, "can't create /dev/tty: No such device or address") || strings.Contains(out, "escaped") {
			t.Errorf("berth %v under a terminal:\n%s", args, out)
		}
	}
}

// TestExecOwnSession: berth boot started from a terminal; berth exec
// without -t (as a health check runs) gets a session of its own too.
func TestExecOwnSession(t *testing.T) {
	dir := t.TempDir()
	packBusybox(t, dir)
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, "[[container]]\nname = \"sess\"\nimage = \"bb.tar.zst\"\ncommand = [\"sleep\", \"1000\"]\nstop_timeout = \"1s\"\n")
	master, slave := openPTY(t)
	defer master.Close()
	boot := bootCommand(t, dir, cfg)
	boot.Stdin, boot.Stdout, boot.Stderr = slave, slave, slave
	boot.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := boot.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	go io.Copy(io.Discard, master)
	defer func() {
		boot.Process.Signal(syscall.SIGTERM)
		boot.Wait()
	}()
	waitFor(t, "sess to run", &bootLog{}, func() bool {
		status, out, _ := berth(t, "ps")
		return status == 0 && strings.Contains(out, "running")
	})
	status, out, stderr := berth(t, "exec", "sess", "sh", "-c", "echo escaped > /dev/tty; echo tty=$?")
	if status != 0 || !strings.Contains(out, "tty=1") || !strings.Contains(stderr, "No such device or address") {
		t.Errorf("berth exec under a berth boot with a terminal: %d %q %q", status, out, stderr)
	}
}
