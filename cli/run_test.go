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
	"slices"
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
	term := readPTY(master)
	if err := cmd.Wait(); err != nil {
		t.Errorf("berth run -t: %v", err)
	}
	out := strings.ReplaceAll(term.end(t), "\r", "")
	for _, w := range []string{"/dev/pts/0\n", "stdin-is-a-terminal\n", "uid=0 TERM=vt220\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%q", w, out)
		}
	}
	if !strings.HasPrefix(out, "/dev/pts/0") {
		t.Errorf("the session starts with %q, not the command's output", out[:min(len(out), 16)])
	}
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
	term := readPTY(master)
	term.waitFor(t, "# ") // the shell's prompt: it reads the terminal now
	master.Write([]byte("echo typed-$((6*7))\r"))
	term.waitFor(t, "typed-42")
	master.Write([]byte("exit 4\r"))
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 4 {
		t.Errorf("berth run -t sh, exit 4: %v", err)
	}
	out := term.end(t)
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
	// Emptying a cgroup and removing it is done before berth run exits:
	// the process must still be in its cgroup now, not only running.
	if where, err := pidsCgroupHas(before); err != nil {
		t.Errorf("the boot's runtwin (pid %s) after berth run --name runtwin: %v", before, err)
	} else if after := pid(); after != before {
		t.Errorf("the boot's runtwin: pid %s before berth run --name runtwin, %q after (its cgroup %s)", before, after, where)
	}
}

// pidsCgroupHas checks that pid is alive and listed in the cgroup.procs
// of the cgroup /proc/PID/cgroup names for the pids controller (v1), or
// of its unified cgroup when no v1 line names pids; it returns that
// cgroup's directory.
func pidsCgroupHas(pid string) (string, error) {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", fmt.Errorf("gone: %w", err)
	}
	if f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(f) == 0 || f[0] == "Z" {
		return "", fmt.Errorf("it has exited: %s", stat)
	}
	lines, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return "", err
	}
	dir := ""
	for _, l := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		switch {
		case len(parts) != 3:
		case slices.Contains(strings.Split(parts[1], ","), "pids"):
			dir = filepath.Join("/sys/fs/cgroup/pids", parts[2])
		case parts[0] == "0" && dir == "" && isCgroup2Root("/sys/fs/cgroup"):
			dir = filepath.Join("/sys/fs/cgroup", parts[2])
		}
	}
	if dir == "" {
		return "", fmt.Errorf("no pids cgroup in %q", lines)
	}
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return dir, fmt.Errorf("its cgroup: %w", err)
	}
	if !slices.Contains(strings.Fields(string(procs)), pid) {
		return dir, fmt.Errorf("not in its cgroup %s: %q", dir, procs)
	}
	return dir, nil
}

// isCgroup2Root reports whether dir is a cgroup2 mount.
func isCgroup2Root(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}
