package container

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/internal/testutil"
)

// TestMain lets the test binary serve as the container init, as the berth
// binary does: Start re-executes /proc/self/exe with InitArg.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == InitArg {
		runtime.LockOSThread()
		Init()
	}
	if os.Getuid() != 0 {
		fmt.Println("container tests need root: namespaces, mounts and cgroups are real")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

var testSeq int

// run starts a container on rootfs and returns its exit and output.
func run(t *testing.T, rootfs string, spec Spec) (Exit, string, error) {
	t.Helper()
	return runWith(t, rootfs, spec, Options{})
}

// runWith is run with options; stdio and DieWithParent are set here.
func runWith(t *testing.T, rootfs string, spec Spec, opts Options) (Exit, string, error) {
	t.Helper()
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	if spec.Name == "" {
		testSeq++
		spec.Name = fmt.Sprintf("test-%d-%d", os.Getpid(), testSeq)
	}
	spec.Rootfs = rootfs
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	opts.Stdout, opts.Stderr, opts.DieWithParent = outW, outW, true
	c, err := Start(layout, spec, opts)
	outW.Close()
	if err != nil {
		return Exit{}, "", err
	}
	var out bytes.Buffer
	_, _ = out.ReadFrom(outR)
	exit, err := c.Wait()
	if err != nil {
		t.Errorf("wait: %v", err)
	}
	return exit, out.String(), nil
}

func TestRun(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	memLimit := "/sys/fs/cgroup/memory.max"
	// No swap by default: memory plus swap is memory on v1, swap 0 on v2.
	swapLimit, noSwap := "/sys/fs/cgroup/memory.swap.max", "0"
	if layout.Version == 1 {
		memLimit = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
		swapLimit, noSwap = "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", "33554432"
	}
	tests := []struct {
		name   string
		spec   Spec
		status int
		out    string // a line the output must contain
	}{
		{"true", Spec{Args: []string{"true"}}, 0, ""},
		{"exit status passes through", Spec{Args: []string{"sh", "-c", "exit 3"}}, 3, ""},
		{"status of a killed child passes through", Spec{Args: []string{"sh", "-c", "sh -c 'kill -9 $$'; exit $?"}}, 137, ""},
		{"workload is PID 1", Spec{Args: []string{"sh", "-c", "echo pid=$$"}}, 0, "pid=1"},
		{"cannot see a host PID", Spec{Args: []string{"sh", "-c", fmt.Sprintf("test -e /proc/%d && echo visible || echo hidden", os.Getpid())}}, 0, "hidden"},
		{"hostname defaults to the name", Spec{Name: "box-a", Args: []string{"hostname"}}, 0, "box-a"},
		{"hostname", Spec{Hostname: "gw", Args: []string{"hostname"}}, 0, "gw"},
		{"env and default PATH", Spec{Env: []string{"A=b"}, Args: []string{"sh", "-c", "echo $A $PATH"}}, 0, "b " + DefaultPath},
		{"memory limit visible in its cgroup", Spec{Limits: Limits{Memory: 32 << 20}, Args: []string{"cat", memLimit}}, 0, "33554432"},
		{"no swap by default", Spec{Limits: Limits{Memory: 32 << 20}, Args: []string{"cat", swapLimit}}, 0, noSwap},
		{"loopback is up", Spec{Args: []string{"cat", "/sys/class/net/lo/operstate"}}, 0, "unknown"},
		{"only lo in its network", Spec{Args: []string{"ls", "/sys/class/net"}}, 0, "lo"},
		{"minimal /dev", Spec{Args: []string{"ls", "/dev"}}, 0, "null"},
		{"root is the rootfs", Spec{Args: []string{"ls", "/"}}, 0, "bin"},
		// berth's init runs outside the limits until it execs the workload.
		{"starts under pids.max=1", Spec{Limits: Limits{Pids: 1}, Args: []string{"echo", "alone"}}, 0, "alone"},
		{"starts under a 1 MiB memory limit", Spec{Limits: Limits{Memory: 1 << 20}, Args: []string{"echo", "small"}}, 0, "small"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exit, out, err := run(t, rootfs, tc.spec)
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			if exit.Status() != tc.status {
				t.Errorf("status %d, want %d (%s); output:\n%s", exit.Status(), tc.status, exit, out)
			}
			if tc.out != "" && !containsLine(out, tc.out) {
				t.Errorf("output lacks line %q:\n%s", tc.out, out)
			}
		})
	}
}

func containsLine(out, want string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == want {
			return true
		}
	}
	return false
}

// TestKilledBySignal kills the workload from outside: a PID namespace's
// init cannot be killed from inside it.
func TestKilledBySignal(t *testing.T) {
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	c, err := Start(layout, Spec{Name: "test-killed", Rootfs: testutil.BusyboxRootfs(t), Args: []string{"sleep", "100"}}, Options{DieWithParent: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	exit, err := c.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if exit.Status() != 137 || exit.Signal != syscall.SIGKILL || exit.OOM() {
		t.Fatalf("exit %+v (%s), want killed by signal 9, status 137", exit, exit)
	}
}

func TestMemoryHogIsOOMKilled(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	// tail keeps the current line of an endless input in memory.
	exit, out, err := run(t, rootfs, Spec{Limits: Limits{Memory: 16 << 20}, Args: []string{"tail", "/dev/zero"}})
	if err != nil {
		t.Fatal(err)
	}
	if !exit.OOM() || exit.Signal != syscall.SIGKILL || exit.Status() != 137 {
		t.Fatalf("exit %+v, want an OOM kill; output:\n%s", exit, out)
	}
	if want := "killed: out of memory (limit 16 MiB)"; !strings.Contains(exit.String(), want) {
		t.Errorf("exit reads %q, want it to contain %q", exit, want)
	}
}

// TestStopAfterOOMIsNotOOM: a container one of whose processes the
// kernel killed for memory, then stopped by berth with SIGKILL, is
// reported as stopped, with the earlier OOM kill noted, not as killed by
// the out-of-memory killer.
func TestStopAfterOOMIsNotOOM(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	testSeq++
	spec := Spec{Name: fmt.Sprintf("test-%d-%d", os.Getpid(), testSeq), Rootfs: rootfs, Limits: Limits{Memory: 16 << 20},
		Args: []string{"sh", "-c", "tail /dev/zero; echo hog gone; exec sleep 1000"}}
	c, err := Start(layout, spec, Options{DieWithParent: true})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if st, _ := c.Stats(); st.OOMKills != nil && *st.OOMKills > 0 {
			break
		}
		if time.Now().After(deadline) { // a hang guard
			c.Kill()
			t.Fatal("the hog was not OOM-killed")
		}
	}
	c.Kill()
	exit, err := c.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if exit.OOM() || !exit.Stopped || exit.OOMKills < 1 {
		t.Fatalf("exit %+v: want stopped, not OOM, with an earlier OOM kill", exit)
	}
	want := "killed by berth's stop (SIGKILL); before that, the kernel killed 1 of its processes: out of memory (limit 16 MiB)"
	if !strings.Contains(exit.String(), want) {
		t.Errorf("exit reads %q, want it to contain %q", exit, want)
	}
}

func TestStartErrors(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	if err := os.WriteFile(filepath.Join(rootfs, "noexec"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"command not in PATH", []string{"no-such-command"}, 127, "no-such-command: not found"},
		{"no such file", []string{"/bin/nope"}, 127, "no such file"},
		{"not executable", []string{"/noexec"}, 126, "permission denied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, rootfs, Spec{Args: tc.args})
			var se *StartError
			if !errors.As(err, &se) || se.Code != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want StartError %d containing %q", err, tc.code, tc.msg)
			}
		})
	}
}

// TestNothingLeftBehind checks that neither a normal exit nor a start that
// fails at any step leaves the container's cgroup behind.
func TestNothingLeftBehind(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		spec Spec
		fail string // part of the start error; "" for a clean run
	}{
		{"clean exit", Spec{Args: []string{"true"}}, ""},
		{"command not found", Spec{Args: []string{"no-such-command"}}, "not found"},
		{"bind source missing", Spec{Args: []string{"true"}, Mounts: []Mount{{Source: "/nonexistent/x", Target: "/x"}}}, "/nonexistent/x"},
		{"bad seccomp profile", Spec{Args: []string{"true"}, Seccomp: "/nonexistent.json"}, "seccomp"},
		{"missing device", Spec{Args: []string{"true"}, Devices: []string{"/dev/nonexistent"}}, "/dev/nonexistent"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.Name = fmt.Sprintf("test-left-%d", i)
			spec.Limits = Limits{Memory: 64 << 20, Pids: 10}
			_, _, err := run(t, rootfs, spec)
			if (err == nil) != (tc.fail == "") || (err != nil && !strings.Contains(err.Error(), tc.fail)) {
				t.Fatalf("start error %v, want one containing %q", err, tc.fail)
			}
			dirs, _ := layout.cgroupDirs(spec.Name)
			for _, d := range dirs {
				if _, err := os.Stat(d); err == nil {
					t.Errorf("cgroup %s left behind", d)
				}
			}
		})
	}
}

// TestLeftoverCgroupReplaced starts a container whose name a killed berth
// left a cgroup under, with a process still in it: the start removes the
// leftover (killing the process) and runs under a fresh cgroup.
func TestLeftoverCgroupReplaced(t *testing.T) {
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("test-leftover-%d", os.Getpid())
	dirs, _ := layout.cgroupDirs(name)
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Process.Kill()
	if err := os.WriteFile(filepath.Join(dirs[0], "cgroup.procs"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	exit, out, err := run(t, testutil.BusyboxRootfs(t), Spec{Name: name, Args: []string{"sh", "-c", "cat /proc/self/cgroup | wc -l"}})
	if err != nil || exit.Status() != 0 {
		t.Fatalf("start over a leftover cgroup: %v (%s) %s", err, exit, out)
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("the process in the leftover cgroup was not killed")
	}
}
