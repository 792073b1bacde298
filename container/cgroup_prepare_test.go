package container

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPrepareParent: on a v2 layout the controllers berth uses that the
// kernel offers are delegated from the root down to berth's parent, and
// the setup cgroup is made, before any start; on v1 nothing is touched.
// A tree of plain files stands in for the unified hierarchy (this host's
// offers no controller berth uses); QEMU's boots run it on a real one.
func TestPrepareParent(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
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
