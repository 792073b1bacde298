package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrepareParent: on a v2 layout the controllers berth uses that the
// kernel offers are delegated from the root down to berth's parent, and
// the setup cgroup is made, before any start; on v1 nothing is touched.
// A tree of plain files stands in for the unified hierarchy (this host's
// offers no controller berth uses); QEMU's boots run it on a real one.
func TestPrepareParent(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) { writeTreeFile(t, p, s) }
	write(filepath.Join(root, "cgroup.controllers"), "cpu io memory pids hugetlb\n")
	write(filepath.Join(root, "cgroup.subtree_control"), "")
	write(filepath.Join(root, CgroupParent, "cgroup.subtree_control"), "")

	v1 := &Layout{Version: 1, Unified: root}
	if err := v1.PrepareParent(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, CgroupParent, SetupCgroup)); !os.IsNotExist(err) {
		t.Fatalf("v1: the setup cgroup was made: %v", err)
	}

	l := &Layout{Version: 2, Unified: root}
	if err := l.PrepareParent(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{root, filepath.Join(root, CgroupParent)} {
		got, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if string(got) != "+cpu +io +memory +pids" {
			t.Errorf("%s/cgroup.subtree_control: %q, want the offered controllers berth uses", dir, got)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, CgroupParent, SetupCgroup)); err != nil || !fi.IsDir() {
		t.Errorf("the setup cgroup was not made: %v", err)
	}
}

// PlaceInit, then PrepareParent, on a stand-in cgroup2 tree (regular
// files): PlaceInit writes PID 1 to berth.init's cgroup.procs and
// enables nothing (the boot calls it before anything may); PrepareParent
// then enables the controllers and writes the weight only where the cpu
// controller's file is.
func TestPlaceInit(t *testing.T) {
	for _, withCPU := range []bool{true, false} {
		root := t.TempDir()
		write := func(p, s string) { writeTreeFile(t, p, s) }
		write(filepath.Join(root, "cgroup.controllers"), "cpu memory pids\n")
		write(filepath.Join(root, "cgroup.subtree_control"), "")
		write(filepath.Join(root, CgroupParent, "cgroup.subtree_control"), "")
		write(filepath.Join(root, InitCgroup, "cgroup.procs"), "")
		if withCPU {
			write(filepath.Join(root, InitCgroup, "cpu.weight"), "100\n")
		}
		check := func(step string, want map[string]string) {
			t.Helper()
			for f, w := range want {
				if got, _ := os.ReadFile(f); string(got) != w {
					t.Errorf("cpu %v, after %s: %s: %q, want %q", withCPU, step, f, got, w)
				}
			}
		}

		if err := (&Layout{Version: 1, Unified: root}).PlaceInit(1); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(filepath.Join(root, InitCgroup, "cgroup.procs")); len(got) != 0 {
			t.Fatalf("v1: PID 1 was moved: %q", got)
		}
		l := &Layout{Version: 2, Unified: root}
		if err := l.PlaceInit(1); err != nil {
			t.Fatal(err)
		}
		weight := map[bool]string{true: "100\n"}[withCPU]
		check("PlaceInit", map[string]string{
			filepath.Join(root, InitCgroup, "cgroup.procs"):             "1",
			filepath.Join(root, "cgroup.subtree_control"):               "",
			filepath.Join(root, CgroupParent, "cgroup.subtree_control"): "",
			filepath.Join(root, InitCgroup, "cpu.weight"):               weight,
		})
		if err := l.PrepareParent(); err != nil {
			t.Fatal(err)
		}
		weight = map[bool]string{true: "10"}[withCPU]
		check("PrepareParent", map[string]string{
			filepath.Join(root, "cgroup.subtree_control"):               "+cpu +memory +pids",
			filepath.Join(root, CgroupParent, "cgroup.subtree_control"): "+cpu +memory +pids",
			filepath.Join(root, InitCgroup, "cpu.weight"):               weight,
		})
		if _, err := os.Stat(filepath.Join(root, InitCgroup, "cpu.weight")); withCPU == os.IsNotExist(err) {
			t.Errorf("cpu %v: cpu.weight: %v", withCPU, err)
		}
		// A second call (berth re-executed after an update) finds it made.
		if err := l.PlaceInit(1); err != nil {
			t.Errorf("again: %v", err)
		}
	}
	// Without the cgroup2 tree: the error names the step and the path.
	err := (&Layout{Version: 2, Unified: filepath.Join(t.TempDir(), "none")}).PlaceInit(1)
	if err == nil || !strings.Contains(err.Error(), InitCgroup) {
		t.Errorf("no tree: %v", err)
	}
}

// writeTreeFile writes s to p, making p's directories: a file of the
// stand-in cgroup2 tree.
func writeTreeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
