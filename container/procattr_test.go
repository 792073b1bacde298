package container

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestProcAttrOK: the child writes an LSM label only to procfs's own attr
// file at /proc, not to a file another filesystem put in its place or to
// a file of another procfs mount.
func TestProcAttrOK(t *testing.T) {
	k := &childPlan{}
	check := func(path string) syscall.Errno {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return k.procAttrOK(f.Fd())
	}
	if e := check("/proc/thread-self/attr/current"); e != 0 {
		t.Errorf("/proc's own attr file: %v", e)
	}
	fake := filepath.Join(t.TempDir(), "exec")
	if err := os.WriteFile(fake, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if e := check(fake); e != unix.EXDEV {
		t.Errorf("a file of another filesystem: %v, want EXDEV", e)
	}
	other := t.TempDir()
	if err := unix.Mount("proc", other, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(other, unix.MNT_DETACH)
	if e := check(filepath.Join(other, "thread-self", "attr", "current")); e != unix.EXDEV {
		t.Errorf("the attr file of another procfs mount: %v, want EXDEV", e)
	}
}
