package container

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"berth/internal/testutil"
)

// TestJoinsEveryHierarchy checks, from the host, that a container's first
// process and an exec'd one are in the container's cgroup in every
// hierarchy (on v1 the direct start's and the exec's child join each one
// through its tasks file).
func TestJoinsEveryHierarchy(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	if err := os.Chmod(filepath.Dir(rootfs), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, spec := range execVariants(t) {
		t.Run(name, func(t *testing.T) {
			c := startRunning(t, rootfs, spec)
			p, err := c.Exec(ExecOptions{Args: []string{"sleep", "1000"}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { syscall.Kill(p.Pid, syscall.SIGKILL); waitPid(t, p.Pid) }()
			for _, pid := range []int{c.Pid, p.Pid} {
				checkInCgroup(t, c, pid)
			}
		})
	}
}

// checkInCgroup fails t unless pid is listed in the cgroup.procs of each
// of c's cgroup directories and /proc/PID/cgroup names c's cgroup in
// every hierarchy it has.
func checkInCgroup(t *testing.T, c *Container, pid int) {
	t.Helper()
	for _, dir := range c.cgroup.dirs {
		data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			t.Fatal(err)
		}
		if !containsLine(string(data), strconv.Itoa(pid)) {
			t.Errorf("process %d is not in %s/cgroup.procs: %q", pid, dir, data)
		}
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	want := "/" + CgroupParent + "/" + c.Spec.Name
	ours := map[string]bool{} // the hierarchies c's cgroup is in, as /proc/PID/cgroup names them
	if c.cgroup.layout.Version == 2 {
		ours[""] = true
	}
	for _, ctrls := range c.cgroup.layout.Hierarchies {
		ours[sortedList(strings.Join(ctrls, ","))] = true
	}
	seen := 0
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 || !ours[sortedList(f[1])] {
			continue
		}
		seen++
		if f[2] != want {
			t.Errorf("process %d: hierarchy %q is at %q, want %q", pid, f[1], f[2], want)
		}
	}
	if seen != len(ours) {
		t.Errorf("process %d: /proc/PID/cgroup names %d of the container's %d hierarchies:\n%s", pid, seen, len(ours), data)
	}
}

// sortedList sorts a comma-separated list.
func sortedList(s string) string {
	l := strings.Split(s, ",")
	slices.Sort(l)
	return strings.Join(l, ",")
}
