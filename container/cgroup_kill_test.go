package container

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestKillSparesReusedPid: in a cgroup without cgroup.kill (v1), a pid
// read from cgroup.procs whose process exits, and whose number a process
// outside the cgroup takes, before the kill, is not killed; the cgroup's
// own process is.
func TestKillSparesReusedPid(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: a cgroup, and ns_last_pid")
	}
	dir := filepath.Join(v1Hierarchy(t, "pids"), fmt.Sprintf("berth-test-kill-%d", os.Getpid()))
	if err := unix.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Rmdir(dir) })
	start := func(join bool) *exec.Cmd {
		c := exec.Command("sleep", "1000")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _, _ = c.Process.Wait() })
		if join {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(c.Process.Pid)), 0); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
	victim, stay := start(true), start(true)
	var outsider *exec.Cmd
	afterProcsRead = func() {
		_ = victim.Process.Kill()
		_, _ = victim.Process.Wait() // reaped: its pid is free
		for try := 0; try < 100 && outsider == nil; try++ {
			// The kernel gives the next process ns_last_pid + 1.
			if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(victim.Process.Pid-1)), 0); err != nil {
				t.Fatal(err)
			}
			if c := start(false); c.Process.Pid == victim.Process.Pid {
				outsider = c
			}
		}
	}
	defer func() { afterProcsRead = nil }()
	killCgroupProcs(dir)
	if outsider == nil {
		t.Fatalf("no process took pid %d again: the test checks nothing", victim.Process.Pid)
	}
	signal := func(ws *os.ProcessState) syscall.Signal { return ws.Sys().(syscall.WaitStatus).Signal() }
	if ws, err := stay.Process.Wait(); err != nil || signal(ws) != syscall.SIGKILL {
		t.Errorf("the cgroup's other process: %v %v, want it killed", ws, err)
	}
	// A SIGKILL sent to the outsider would end it with SIGKILL whatever
	// came after it.
	_ = outsider.Process.Signal(syscall.SIGTERM)
	if ws, err := outsider.Process.Wait(); err != nil || signal(ws) != syscall.SIGTERM {
		t.Errorf("pid %d, taken outside the cgroup after it was read: %v %v, want it ended by the test's SIGTERM, not killed", victim.Process.Pid, ws, err)
	}
}
