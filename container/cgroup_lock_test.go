package container

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCgroupLockedByAnother: a named container's cgroup held by one
// berth is not taken over by another berth's container of the same name
// (before, it was taken for a killed berth's leftover: its processes
// killed, the cgroup removed). Once the first lets go, the name is free;
// a killed berth's lock goes with it. berth run's run-PID names are not
// locked.
func TestCgroupLockedByAnother(t *testing.T) {
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	defer func(d string) { CgroupLockDir = d }(CgroupLockDir)
	CgroupLockDir = t.TempDir()
	name := fmt.Sprintf("locktest-%d", os.Getpid())
	first, err := layout.newCgroup(name, Limits{Pids: 8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.destroy()
	sleeper := exec.Command("sleep", "100")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Process.Kill()
	for _, dir := range first.dirs {
		if err := os.WriteFile(dir+"/cgroup.procs", []byte(strconv.Itoa(sleeper.Process.Pid)), 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := layout.newCgroup(name, Limits{Pids: 8}, nil); err == nil || !strings.Contains(err.Error(), "in use by another running berth") {
		t.Fatalf("a second cgroup of the same name: %v, want refused", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", sleeper.Process.Pid)); err != nil {
		t.Errorf("the first cgroup's process was killed: %v", err)
	}
	for _, dir := range first.dirs {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("the first cgroup was removed: %v", err)
		}
	}
	sleeper.Process.Kill()
	sleeper.Wait()
	if err := first.destroy(); err != nil {
		t.Fatal(err)
	}
	second, err := layout.newCgroup(name, Limits{Pids: 8}, nil)
	if err != nil {
		t.Fatalf("after the first let go: %v", err)
	}
	second.destroy()
	// Another process holding the lock (as another berth) keeps the name;
	// killed, as a berth may be, it lets go.
	// flock(1) says when it holds the lock: its command prints a line,
	// run only once flock has it. Polling for it instead (take the name,
	// let go, try again) starved flock's blocking wait on a loaded
	// machine: it woke after the test had taken the name again (CI at
	// 0cddee6, 30 s without the lock).
	holder := exec.Command("flock", "-o", CgroupLockDir+"/"+name, "sh", "-c", "echo held; exec sleep 100")
	holder.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-holder.Process.Pid, syscall.SIGKILL) // the sleep too
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "held\n" {
		t.Fatalf("flock did not report holding the lock: %q, %v", line, err)
	}
	if _, err := layout.newCgroup(name, Limits{}, nil); err == nil {
		t.Fatal("a name whose lock another process holds was taken")
	}
	holder.Process.Kill()
	holder.Wait()
	// flock -o's child closes its copy of the lock's file after the fork:
	// killed before that, the holder leaves the lock to it for a moment.
	var third *cgroup
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if third, err = layout.newCgroup(name, Limits{}, nil); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	third.destroy()
	run := fmt.Sprintf("run-%d", os.Getpid())
	a, err := layout.newCgroup(run, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.destroy()
	b, err := layout.newCgroup(run, Limits{}, nil)
	if err != nil {
		t.Fatalf("a run-PID name is not locked: %v", err)
	}
	b.destroy()
}
