package container

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestInitCpuset fills a new v1 cpuset from its parent, and the parent's
// own from the root, then checks that berth set cgroup.clone_children on
// the parent, so that the next cpuset below it starts filled.
func TestInitCpuset(t *testing.T) {
	point := v1Hierarchy(t, "cpuset")
	if strings.TrimSpace(read(t, filepath.Join(point, "cgroup.clone_children"))) != "0" {
		t.Skip("the cpuset root has clone_children set: a new cgroup below it starts filled")
	}
	parent := filepath.Join(point, fmt.Sprintf("berth-test-cpuset-%d", os.Getpid()))
	a, b := filepath.Join(parent, "a"), filepath.Join(parent, "b")
	for _, d := range []string{parent, a} {
		if err := unix.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{b, a, parent} {
			_ = unix.Rmdir(d)
		}
	})
	if cpusetFilled(a) {
		t.Fatalf("%s starts filled: the test checks nothing", a)
	}
	if err := initCpuset(a, ""); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		if got, want := read(t, filepath.Join(a, f)), read(t, filepath.Join(point, f)); got != want || strings.TrimSpace(got) == "" {
			t.Errorf("%s: %q, want the root's %q", f, got, want)
		}
	}
	if got := strings.TrimSpace(read(t, filepath.Join(parent, "cgroup.clone_children"))); got != "1" {
		t.Errorf("parent's clone_children %q, want 1", got)
	}
	if err := unix.Mkdir(b, 0o755); err != nil {
		t.Fatal(err)
	}
	if !cpusetFilled(b) {
		t.Errorf("%s, made after the first, starts empty", b)
	}
	if err := initCpuset(b, "0"); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(read(t, filepath.Join(b, "cpuset.cpus"))); got != "0" {
		t.Errorf("cpuset.cpus %q after initCpuset(\"0\")", got)
	}
}

// TestWriteEach writes each value with a write of its own: a v1
// devices.allow takes the first rule of a write and drops the rest
// without an error.
func TestWriteEach(t *testing.T) {
	point := v1Hierarchy(t, "devices")
	dir := filepath.Join(point, fmt.Sprintf("berth-test-devices-%d", os.Getpid()))
	if err := unix.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Rmdir(dir) })
	if err := writeFile(filepath.Join(dir, "devices.deny"), "a"); err != nil {
		t.Fatal(err)
	}
	rules := []string{"c 1:3 rwm", "c 1:5 rwm", "c 5:0 rwm"}
	if err := writeEach(filepath.Join(dir, "devices.allow"), rules...); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "devices.list")); got != strings.Join(rules, "\n")+"\n" {
		t.Errorf("devices.list %q, want %q", got, rules)
	}
	allow := filepath.Join(dir, "devices.allow")
	if err := writeEach(allow, "c 1:7 rwm", "not a rule"); err == nil || !strings.Contains(err.Error(), `"not a rule"`) || !strings.Contains(err.Error(), allow) {
		t.Errorf("a refused rule: %v, want an error naming it and %s", err, allow)
	}
}

// v1Hierarchy returns where the v1 hierarchy of controller is mounted,
// and skips t without one.
func v1Hierarchy(t *testing.T, controller string) string {
	t.Helper()
	l, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	point, ok := l.Controllers[controller]
	if l.Version != 1 || !ok {
		t.Skipf("needs a v1 %s hierarchy (this host's layout)", controller)
	}
	return point
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
