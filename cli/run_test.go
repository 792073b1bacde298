package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
	cmd := exec.Command(berthBin, "run", "-t", rootfs, "--", "sh", "-c", "tty; test -t 0 && echo stdin-is-a-terminal; echo uid=$(id -u) TERM=$TERM")
	cmd.Env = append(os.Environ(), "TERM=vt220")
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
	for _, w := range []string{"/dev/pts/0\n", "stdin-is-a-terminal\n", "uid=0 TERM=vt220\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%q", w, out)
		}
	}
	if !strings.HasPrefix(out, "/dev/pts/0") {
		t.Errorf("the session starts with %q, not the command's output", out[:min(len(out), 16)])
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

// TestRunTTYInteractive types into a berth run -t shell as a user at a
// terminal would: the session carries what the shell writes, and nothing
// else (no stray NUL, "^@", at its start).
func TestRunTTYInteractive(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	master, slave := openPTY(t)
	defer master.Close()
	cmd := exec.Command(berthBin, "run", "-t", rootfs, "--", "/bin/sh")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&buf, master); close(done) }()
	time.Sleep(500 * time.Millisecond) // let the shell print its prompt (not a timing check: only what it prints is checked)
	master.Write([]byte("echo typed-$((6*7))\r"))
	time.Sleep(300 * time.Millisecond)
	master.Write([]byte("exit 4\r"))
	err := cmd.Wait()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Errorf("berth run -t sh, exit 4: %v", err)
	}
	out := buf.String()
	if !strings.Contains(out, "typed-42") || strings.Contains(out, "\x00") || strings.Contains(out, "^@") {
		t.Errorf("session output %q", out)
	}
}

// TestRunKilledCleansUp: a berth run killed with SIGKILL leaves its
// temporary root filesystem behind; the next berth run removes it, as it
// removes the dead run's cgroup.
func TestRunKilledCleansUp(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	img := filepath.Join(t.TempDir(), "bb.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", rootfs, "-o", img); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	cmd := exec.Command(berthBin, "run", img, "--", "sh", "-c", "echo up; exec sleep 100")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "up\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("berth-run-%d-*", cmd.Process.Pid)))
	if len(dirs) != 1 {
		t.Fatalf("temporary directories of the run: %v", dirs)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := os.Stat(dirs[0]); err != nil {
		t.Fatalf("kill -9 removed %s by itself? %v", dirs[0], err)
	}
	if status, _, stderr := berth(t, "run", img, "--", "true"); status != 0 {
		t.Fatalf("second run: %d %s", status, stderr)
	}
	if _, err := os.Stat(dirs[0]); err == nil {
		t.Errorf("%s of the killed run is still there", dirs[0])
	}
}

// TestBerthInContainerIsNotInit: berth started as a container's first
// process with no verb is PID 1 of its own namespace only: it must act as
// the CLI (usage, status 2) and not take the machine's boot path, which
// ignores SIGTERM and would try to mount and reboot.
func TestBerthInContainerIsNotInit(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	status, stdout, stderr := berth(t, "run", "--mount", berthBin+":/berth:ro", rootfs, "--", "/berth")
	if status != 2 || !strings.Contains(stderr, "usage: berth COMMAND") || strings.Contains(stdout+stderr, "starting as PID 1") {
		t.Fatalf("berth as a container's PID 1: status %d\nstdout %s\nstderr %s", status, stdout, stderr)
	}
	status, stdout, _ = berth(t, "run", "--mount", berthBin+":/berth:ro", rootfs, "--", "/berth", "version")
	if status != 0 || !strings.HasPrefix(stdout, "berth ") {
		t.Fatalf("berth version in a container: %d %q", status, stdout)
	}
}

// TestRunMountOptions: --mount takes ro and follow; a symlinked source
// is bound only with follow.
func TestRunMountOptions(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "real"), "through the link\n")
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	status, stdout, stderr := berth(t, "run", "--mount", link+":/x:ro,follow", rootfs, "--", "sh", "-c", "cat /x; echo no >> /x || echo read-only")
	if status != 0 || stdout != "through the link\nread-only\n" {
		t.Errorf("ro,follow: %d %q %s", status, stdout, stderr)
	}
	if status, _, stderr := berth(t, "run", "--mount", link+":/x", rootfs, "--", "cat", "/x"); status != 125 || !strings.Contains(stderr, "is a symlink") {
		t.Errorf("a symlinked source without follow: %d %s", status, stderr)
	}
	if status, _, stderr := berth(t, "run", "--mount", link+":/x:fast", rootfs, "--", "true"); status != 2 || !strings.Contains(stderr, `unknown option "fast"`) {
		t.Errorf("an unknown option: %d %s", status, stderr)
	}
}

// TestRunNameOfABootContainer: berth run --name NAME beside a berth boot
// whose container is called NAME too leaves that container alone — the
// run's cgroup is its own (run-PID), where it used to empty and remove
// the boot container's as a leftover of the same name.
func TestRunNameOfABootContainer(t *testing.T) {
	dir := t.TempDir()
	packBusybox(t, dir)
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, "[[container]]\nname = \"runtwin\"\nimage = \"bb.tar.zst\"\ncommand = [\"sleep\", \"1000\"]\nstop_timeout = \"1s\"\n")
	bootInDir(t, dir, cfg)
	pid := func() string {
		_, out, _ := berth(t, "ps", "--json")
		var ps []struct {
			Name, State string
			Pid         int
		}
		json.Unmarshal([]byte(out), &ps)
		for _, p := range ps {
			if p.Name == "runtwin" && p.State == "running" {
				return strconv.Itoa(p.Pid)
			}
		}
		return ""
	}
	var before string
	for i := 0; i < 200 && before == ""; i++ {
		time.Sleep(50 * time.Millisecond)
		before = pid()
	}
	if before == "" {
		t.Fatal("the boot's runtwin never ran")
	}
	if status, _, stderr := berth(t, "run", "--name", "runtwin", testutil.BusyboxRootfs(t), "--", "true"); status != 0 {
		t.Fatalf("berth run --name runtwin: %d %s", status, stderr)
	}
	time.Sleep(300 * time.Millisecond) // an exit would have been seen by now
	if after := pid(); after != before {
		t.Errorf("the boot's runtwin: pid %s before berth run --name runtwin, %q after", before, after)
	}
}
