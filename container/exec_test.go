package container

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/testutil"
)

// startRunning starts spec on rootfs, running `sleep 1000` unless spec
// has a command, and stops it when the test ends.
func startRunning(t *testing.T, rootfs string, spec Spec) *Container {
	t.Helper()
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	testSeq++
	spec.Name = fmt.Sprintf("exec-%d-%d", os.Getpid(), testSeq)
	spec.Rootfs = rootfs
	if spec.Args == nil {
		spec.Args = []string{"sleep", "1000"}
	}
	c, err := Start(layout, spec, Options{DieWithParent: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.alive() {
			c.Kill()
			c.Wait()
		}
	})
	return c
}

// alive reports whether the container's first process has not been
// collected.
func (c *Container) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pidfd != nil
}

// execOutput runs opts in c and returns its wait status and output
// (stdout and stderr together).
func execOutput(t *testing.T, c *Container, opts ExecOptions) (syscall.WaitStatus, string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	opts.Stdout, opts.Stderr = w, w
	p, err := c.Exec(opts)
	w.Close()
	if err != nil {
		return 0, "", err
	}
	out, _ := io.ReadAll(r)
	return waitPid(t, p.Pid), string(out), nil
}

func waitPid(t *testing.T, pid int) syscall.WaitStatus {
	t.Helper()
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("wait %d: %v", pid, err)
		}
		return ws
	}
}

// execVariants are the containers every exec guarantee is checked in:
// the defaults, a user namespace, a read-only root.
func execVariants(t *testing.T) map[string]Spec {
	return map[string]Spec{
		"default":  {Limits: Limits{Pids: 64, Memory: 64 << 20}},
		"userns":   {UserNS: &UserNS{UIDMap: []IDMap{{0, 100000, 65536}}, GIDMap: []IDMap{{0, 100000, 65536}}}},
		"readonly": {ReadonlyRoot: true, User: User{UID: 1000, GID: 1000, Groups: []uint32{10}}, Rlimits: []Rlimit{{Name: "nofile", Soft: 77, Hard: 88}}},
	}
}

// TestExecSameConfinement checks, from the host, that an exec'd process
// has exactly what the container's first process has: every namespace,
// the cgroup (both in the container's, in every hierarchy), the root,
// capability sets, no_new_privs, seccomp (and the clone guard besides),
// ids, rlimits and oom_score_adj; and nothing of berth's: only fds 0-2,
// an executable of the container's.
func TestExecSameConfinement(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	if err := os.Chmod(filepath.Dir(rootfs), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, spec := range execVariants(t) {
		t.Run(name, func(t *testing.T) {
			adj := 123
			spec.OOMScoreAdj = &adj
			c := startRunning(t, rootfs, spec)
			p, err := c.Exec(ExecOptions{Args: []string{"sleep", "1000"}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { syscall.Kill(p.Pid, syscall.SIGKILL); waitPid(t, p.Pid) }()
			checkInCgroup(t, c, c.Pid)
			checkInCgroup(t, c, p.Pid)
			init, exe := fmt.Sprintf("/proc/%d", c.Pid), fmt.Sprintf("/proc/%d", p.Pid)
			for _, ns := range []string{"mnt", "uts", "ipc", "net", "pid", "cgroup", "user"} {
				a, _ := os.Readlink(init + "/ns/" + ns)
				b, _ := os.Readlink(exe + "/ns/" + ns)
				if a != b || a == "" {
					t.Errorf("namespace %s: container %q, exec %q", ns, a, b)
				}
			}
			for _, f := range []string{"cgroup", "limits", "oom_score_adj"} {
				a, _ := os.ReadFile(init + "/" + f)
				b, _ := os.ReadFile(exe + "/" + f)
				if !bytes.Equal(a, b) {
					t.Errorf("%s: container\n%s\nexec\n%s", f, a, b)
				}
			}
			// The exec'd process has one filter more: the clone guard.
			want, got := statusFields(t, init), statusFields(t, exe)
			want = strings.Replace(want, "Seccomp_filters:\t1", "Seccomp_filters:\t2", 1)
			if want != got {
				t.Errorf("/proc/PID/status: container\n%s\nexec\n%s", want, got)
			}
			if !strings.Contains(got, "Seccomp:\t2") || !strings.Contains(got, "NoNewPrivs:\t1") {
				t.Errorf("exec not confined:\n%s", got)
			}
			rootA, _ := os.Stat(init + "/root/")
			rootB, _ := os.Stat(exe + "/root/")
			if rootA == nil || rootB == nil || !os.SameFile(rootA, rootB) {
				t.Error("the exec'd process's root is not the container's")
			}
			fds, _ := os.ReadDir(exe + "/fd")
			if len(fds) != 3 {
				t.Errorf("exec'd process holds %d fds, want 3 (stdio)", len(fds))
			}
			bin, _ := os.Stat(filepath.Join(rootfs, "bin", "busybox"))
			self, _ := os.Stat(exe + "/exe")
			if bin == nil || self == nil || !os.SameFile(bin, self) {
				t.Error("/proc/PID/exe of the exec'd process is not the container's busybox")
			}
		})
	}
}

// statusFields are the lines of /proc/PID/status that say what a process
// may do.
func statusFields(t *testing.T, proc string) string {
	data, err := os.ReadFile(proc + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		for _, k := range []string{"Uid:", "Gid:", "Groups:", "Cap", "NoNewPrivs:", "Seccomp"} {
			if strings.HasPrefix(l, k) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestExecFromInside checks an exec as the exec'd command sees it, in
// each variant: the container's hostname and PID namespace (its first
// process is PID 1, no host pid shows), its cgroup (the command is in
// the container's cgroup.procs), a working directory inside the root,
// its environment with overrides, and the user and directory asked for.
func TestExecFromInside(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	if err := os.Chmod(filepath.Dir(rootfs), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, spec := range execVariants(t) {
		t.Run(name, func(t *testing.T) {
			spec.Env = []string{"A=container", "B=container"}
			spec.Hostname = "inside"
			c := startRunning(t, rootfs, spec)
			script := fmt.Sprintf(`hostname; cat /proc/1/comm; test -e /proc/%d && echo host-pid-seen
				pwd; echo $A $B $C; cat /proc/self/cgroup | grep -v ':/$' ; grep -qx $$ /sys/fs/cgroup/pids/cgroup.procs /sys/fs/cgroup/cgroup.procs 2>/dev/null && echo in-cgroup
				test -e /etc/host-only && echo host-path-seen; exit 0`, os.Getpid())
			ws, out, err := execOutput(t, c, ExecOptions{Args: []string{"sh", "-c", script}, Env: []string{"B=exec", "C=new"}})
			if err != nil {
				t.Fatal(err)
			}
			want := "inside\nsleep\n/\ncontainer exec new\nin-cgroup\n"
			if ws.ExitStatus() != 0 || out != want {
				t.Errorf("exec saw:\n%s(status %d), want:\n%s", out, ws.ExitStatus(), want)
			}
			ws, out, err = execOutput(t, c, ExecOptions{Args: []string{"sh", "-c", "id -u; id -g; id -G; pwd"}, User: &User{UID: 5, GID: 6}, Cwd: "/etc"})
			if err != nil || out != "5\n6\n6\n/etc\n" {
				t.Errorf("--user 5:6 --workdir /etc: %q %v", out, err)
			}
		})
	}
}

// TestExecStatus checks how an exec ends: its exit status, a signal, a
// command that is missing or not executable, a bad working directory,
// and a container that no longer runs.
func TestExecStatus(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	c := startRunning(t, rootfs, Spec{})
	for _, tc := range []struct {
		args      []string
		cwd       string
		status    int
		signal    syscall.Signal
		startCode int
	}{
		{args: []string{"true"}},
		{args: []string{"sh", "-c", "exit 3"}, status: 3},
		{args: []string{"sh", "-c", "kill -9 $$"}, signal: syscall.SIGKILL},
		{args: []string{"nosuch"}, startCode: 127},
		{args: []string{"/nosuch"}, startCode: 127},
		{args: []string{"/etc/passwd"}, startCode: 126},
		{args: []string{"true"}, cwd: "/nosuch", startCode: 125},
	} {
		ws, out, err := execOutput(t, c, ExecOptions{Args: tc.args, Cwd: tc.cwd})
		var se *StartError
		switch {
		case tc.startCode != 0:
			if !errors.As(err, &se) || se.Code != tc.startCode {
				t.Errorf("%v: error %v, want a start error %d", tc.args, err, tc.startCode)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.signal != 0 && (!ws.Signaled() || ws.Signal() != tc.signal):
			t.Errorf("%v: %v, want killed by %v (%s)", tc.args, ws, tc.signal, out)
		case tc.signal == 0 && ws.ExitStatus() != tc.status:
			t.Errorf("%v: status %d, want %d (%s)", tc.args, ws.ExitStatus(), tc.status, out)
		}
	}
	c.Kill()
	c.Wait()
	if _, _, err := execOutput(t, c, ExecOptions{Args: []string{"true"}}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("exec after the container ended: %v, want ErrNotRunning", err)
	}
}

// TestExecKilledWithContainer: an exec'd process ends when the
// container's first process does.
func TestExecKilledWithContainer(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	c := startRunning(t, rootfs, Spec{})
	p, err := c.Exec(ExecOptions{Args: []string{"sleep", "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(c.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ws := waitPid(t, p.Pid); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("exec'd process after its container's end: %v", ws)
	}
	c.Wait()
}

// TestExecCountsAgainstPidsMax: in a container of pids = 2 whose first
// process is one, an exec'd shell is the second and cannot fork.
func TestExecCountsAgainstPidsMax(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	c := startRunning(t, rootfs, Spec{Limits: Limits{Pids: 2}})
	ws, out, err := execOutput(t, c, ExecOptions{Args: []string{"sh", "-c", "/bin/true & wait; echo forked"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "can't fork") || strings.Contains(out, "forked") || ws.ExitStatus() == 0 {
		t.Errorf("a fork beyond pids.max: %q (%v), want the fork refused", out, ws)
	}
}

// TestExecTerminal: with TTY the command gets a new terminal of the
// container's devpts, of the size asked for, as its controlling one.
func TestExecTerminal(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	c := startRunning(t, rootfs, Spec{})
	p, err := c.Exec(ExecOptions{Args: []string{"sh", "-c", "tty; stty size; ls /dev/pts"}, TTY: true, Rows: 31, Cols: 101})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(p.PTY) // ends with EIO once the command is gone
	p.PTY.Close()
	if ws := waitPid(t, p.Pid); ws.ExitStatus() != 0 {
		t.Errorf("status %v", ws)
	}
	lines := strings.Fields(string(out))
	if len(lines) < 4 || !strings.HasPrefix(lines[0], "/dev/pts/") || lines[1] != "31" || lines[2] != "101" {
		t.Errorf("terminal: %q", out)
	}
}

// TestExecChildUndumpable: while the child of an exec shares berth's
// memory, berth is non-dumpable, so that no process of the container
// can ptrace the child or open its /proc/PID/mem; after the exec berth
// is as dumpable as before.
func TestExecChildUndumpable(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	c := startRunning(t, rootfs, Spec{})
	before, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	during := -1
	execCloned = func(int) { during, _ = unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0) }
	defer func() { execCloned = nil }()
	if _, _, err := execOutput(t, c, ExecOptions{Args: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	after, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if during != 0 || after != before {
		t.Errorf("dumpable: %d before, %d while the child shares berth's memory, %d after; want 0 during, as before after", before, during, after)
	}
}

// TestExecChildStopped: a process of the container may stop an exec's
// child before its execve (SIGSTOP, as the same user); berth gives up
// on it after execStartTimeout instead of waiting for ever, kills it
// and says so.
func TestExecChildStopped(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	c := startRunning(t, rootfs, Spec{})
	execStartTimeout = time.Second
	defer func() { execCloned, execStartTimeout = nil, 10*time.Second }()
	err := execStopped(t, c, ExecOptions{Args: []string{"true"}})
	var se *StartError
	if !errors.As(err, &se) || se.Code != 125 || !strings.Contains(err.Error(), "had not reached its execve") {
		t.Errorf("exec of a stopped child: %v", err)
	}
}

// execStopped runs an exec whose child the test stops (SIGSTOP) while
// it is still berth's (its exe is berth's), as a process of the
// container could, and returns Exec's error; it skips the test when the
// child reached its execve first.
func execStopped(t *testing.T, c *Container, opts ExecOptions) error {
	t.Helper()
	stoppedEarly := false
	execCloned = func(pid int) {
		syscall.Kill(pid, syscall.SIGSTOP)
		self, _ := os.Stat("/proc/self/exe")
		exe, _ := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
		stoppedEarly = self != nil && exe != nil && os.SameFile(self, exe)
	}
	p, err := c.Exec(opts)
	if !stoppedEarly {
		if err == nil {
			syscall.Kill(p.Pid, syscall.SIGKILL)
			waitPid(t, p.Pid)
		}
		t.Skip("the child reached its execve before the test stopped it")
	}
	return err
}

// TestExecStartTimeout: ExecOptions.StartTimeout shortens the wait for
// a stopped child (a health check's timeout bounds its start); one
// longer than the default bound does not lengthen it.
func TestExecStartTimeout(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	c := startRunning(t, rootfs, Spec{})
	execStartTimeout = 2 * time.Second
	defer func() { execCloned, execStartTimeout = nil, 10*time.Second }()
	for _, tc := range []struct {
		opt  time.Duration
		want string
	}{
		{300 * time.Millisecond, "after 300ms"},
		{time.Hour, "after 2s"},
	} {
		err := execStopped(t, c, ExecOptions{Args: []string{"true"}, StartTimeout: tc.opt})
		var se *StartError
		if !errors.As(err, &se) || se.Code != 125 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("StartTimeout %s: %v, want a start error %q", tc.opt, err, tc.want)
		}
	}
}

func TestExecLandlockMerged(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	c := startRunning(t, rootfs, Spec{Landlock: &Landlock{Read: []string{"/"}, Write: []string{"/tmp", "/dev"}}})
	_, out, err := execOutput(t, c, ExecOptions{Args: []string{"sh", "-c", "touch /tmp/ok && echo w-ok; touch /etc/x 2>/dev/null || echo denied; grep -c . /proc/self/attr/current"}})
	t.Logf("%q %v", out, err)
	if err != nil || !strings.Contains(out, "w-ok\ndenied") {
		t.Fatal("landlock not applied to exec")
	}
}

// TestExecRefusedToTracers: a container given CAP_SYS_PTRACE without a
// user namespace could trace an exec's child before it is confined (it
// has berth's capabilities and memory, in the container's PID namespace,
// and non-dumpable does not stop such a tracer): here its processes stop
// every berth process they see and write a host file through its root.
// Exec is refused, naming why, and the file is never written; with a
// user namespace the same capability traces nothing and exec works.
func TestExecRefusedToTracers(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	host := filepath.Join(t.TempDir(), "pwned")
	self, _ := os.ReadFile("/proc/self/comm")
	attack := fmt.Sprintf(`while :; do for d in /proc/[0-9]*; do read -r n < $d/comm 2>/dev/null; if [ "$n" = %q ]; then kill -STOP ${d#/proc/}; echo pwned > $d/root%s; kill -CONT ${d#/proc/}; fi; done; done`,
		strings.TrimSpace(string(self)), host)
	caps := append(append([]string{}, DefaultCaps...), "SYS_PTRACE")
	c := startRunning(t, rootfs, Spec{Caps: caps, Args: []string{"sh", "-c", attack}})
	for range 50 {
		_, _, err := execOutput(t, c, ExecOptions{Args: []string{"true"}})
		if !errors.Is(err, ErrTracesExecs) {
			t.Fatalf("exec: %v, want it refused: %v", err, ErrTracesExecs)
		}
	}
	if _, err := os.Stat(host); err == nil {
		t.Fatalf("a process of the container wrote %s through an exec's child", host)
	}
	userns := &UserNS{UIDMap: []IDMap{{0, 100000, 65536}}, GIDMap: []IDMap{{0, 100000, 65536}}}
	c = startRunning(t, rootfs, Spec{Caps: caps, UserNS: userns})
	if ws, _, err := execOutput(t, c, ExecOptions{Args: []string{"true"}}); err != nil || ws.ExitStatus() != 0 {
		t.Errorf("exec with a user namespace: %v, %v", ws, err)
	}
}

// sameMemory reports whether two processes share one memory (kcmp(2),
// KCMP_VM).
func sameMemory(a, b int) (bool, error) {
	const kcmpVM = 1
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), kcmpVM, 0, 0, 0)
	if errno != 0 {
		return false, fmt.Errorf("kcmp %d %d: %w", a, b, errno)
	}
	return r == 0, nil
}

// TestExecChildOwnMemory: the child of an exec, which joins the
// container's cgroups beside its processes, runs in a copy of berth's
// memory, not in berth's: the OOM killer, driven by the container and
// finding the child there (stopped, say, by a process of the container),
// kills every process of the memory it chose, which would be berth.
func TestExecChildOwnMemory(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	c := startRunning(t, rootfs, Spec{})
	shared, kerr := true, errors.New("the exec's child was not seen")
	execCloned = func(pid int) { shared, kerr = sameMemory(os.Getpid(), pid) }
	defer func() { execCloned = nil }()
	if _, _, err := execOutput(t, c, ExecOptions{Args: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	if kerr != nil || shared {
		t.Errorf("the exec's child shared berth's memory: %v (%v)", shared, kerr)
	}
}

// TestOOMScoreAdjNotBerths: a container's oom_score_adj is its own and its
// execs'; berth's stays as it was (the kernel writes a value given to one
// process sharing a memory to all of them).
func TestOOMScoreAdjNotBerths(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	own := func() string {
		b, err := os.ReadFile("/proc/self/oom_score_adj")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	before := own()
	adj := 700
	c := startRunning(t, rootfs, Spec{OOMScoreAdj: &adj})
	if got := own(); got != before {
		t.Errorf("berth's oom_score_adj after a start with 700: %s, was %s", got, before)
	}
	_, out, err := execOutput(t, c, ExecOptions{Args: []string{"cat", "/proc/self/oom_score_adj"}})
	if err != nil || strings.TrimSpace(out) != "700" {
		t.Errorf("exec's oom_score_adj: %q %v, want 700", out, err)
	}
	if got := own(); got != before {
		t.Errorf("berth's oom_score_adj after an exec: %s, was %s", got, before)
	}
}
