package container

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"berth/internal/mountinfo"
)

// checkInCgroup fails t unless pid is listed in the cgroup.procs of each
// of c's cgroup directories (on v1 the direct start's and the exec's
// child join each one through its tasks file) and /proc/PID/cgroup names c's cgroup in
// every hierarchy it has: the directory below the hierarchy's mount,
// seen from the mount's root (not "/" when the tests run in a container
// that bind-mounted its own cgroup).
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
	mounts, err := mountinfo.Read()
	if err != nil {
		t.Fatal(err)
	}
	root := map[string]string{}
	for _, m := range mounts {
		root[m.Point] = m.Root
	}
	rel := "/" + CgroupParent + "/" + c.cgroup.name
	want := map[string]string{} // by the hierarchy's controllers, as /proc/PID/cgroup names them
	if c.cgroup.layout.Version == 2 {
		want[""] = filepath.Join(root[c.cgroup.layout.Unified], rel)
	}
	for point, ctrls := range c.cgroup.layout.Hierarchies {
		want[controllers(strings.Join(ctrls, ","))] = filepath.Join(root[point], rel)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		w, ok := want[controllers(f[1])]
		if !ok {
			continue
		}
		seen++
		if f[2] != w {
			t.Errorf("process %d: hierarchy %q is at %q, want %q", pid, f[1], f[2], w)
		}
	}
	if seen != len(want) {
		t.Errorf("process %d: /proc/PID/cgroup names %d of the container's %d hierarchies:\n%s", pid, seen, len(want), data)
	}
}

// controllers sorts a hierarchy's comma-separated controllers, leaving
// out a name= entry.
func controllers(s string) string {
	var l []string
	for _, c := range strings.Split(s, ",") {
		if !strings.HasPrefix(c, "name=") {
			l = append(l, c)
		}
	}
	slices.Sort(l)
	return strings.Join(l, ",")
}
