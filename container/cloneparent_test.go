package container

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestExecCloneParentRefused checks that an exec'd process, berth's
// child, cannot make berth more children: clone with CLONE_PARENT fails
// with EPERM and clone3 with ENOSYS, whatever the profile, and the test
// process (berth here) has no new child after it.
func TestExecCloneParentRefused(t *testing.T) {
	rootfs := probeRootfs(t)
	if err := os.Chmod(filepath.Dir(rootfs), 0o755); err != nil {
		t.Fatal(err)
	}
	userns := &UserNS{UIDMap: []IDMap{{0, 100000, 65536}}, GIDMap: []IDMap{{0, 100000, 65536}}}
	for name, spec := range map[string]Spec{
		"default":           {},
		"unconfined":        {Seccomp: "unconfined"},
		"unconfined-nnp":    {Seccomp: "unconfined", AllowNewPrivileges: true},
		"default-nnp":       {AllowNewPrivileges: true},
		"userns":            {UserNS: userns},
		"userns-unconfined": {UserNS: userns, Seccomp: "unconfined", AllowNewPrivileges: true},
	} {
		t.Run(name, func(t *testing.T) {
			c := startRunning(t, rootfs, spec)
			before := ownChildren(t)
			ws, out, err := execOutput(t, c, ExecOptions{Args: []string{"/bin/probe", "cloneparent"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, pid := range ownChildren(t) {
				if !slices.Contains(before, pid) {
					t.Errorf("the test process got a child %d of the exec'd process", pid)
					var st syscall.WaitStatus
					_, _ = syscall.Wait4(pid, &st, 0, nil)
				}
			}
			if want := "clone: denied (EPERM)\nclone3: denied (ENOSYS)\n"; ws.ExitStatus() != 0 || out != want {
				t.Errorf("exec'd probe said:\n%s(status %d), want:\n%s", out, ws.ExitStatus(), want)
			}
		})
	}
}

// TestFirstProcessCloneParent checks what the guard leaves alone: the
// container's first process, PID 1 of its namespace, is refused
// CLONE_PARENT by the kernel itself (EINVAL), unconfined.
func TestFirstProcessCloneParent(t *testing.T) {
	rootfs := probeRootfs(t)
	exit, out, err := run(t, rootfs, Spec{Seccomp: "unconfined", Args: []string{"/bin/probe", "cloneparent"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "clone: denied (EINVAL)\nclone3: denied (EINVAL)\n"; exit.Status() != 0 || out != want {
		t.Errorf("first process said:\n%s(%s), want:\n%s", out, exit, want)
	}
}

// ownChildren lists the children of the test process, zombies included.
func ownChildren(t *testing.T) []int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, task := range tasks {
		data, err := os.ReadFile("/proc/self/task/" + task.Name() + "/children")
		if err != nil {
			continue // a thread that has ended
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}
