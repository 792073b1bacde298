package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/internal/testutil"
)

// TestNoThreadStaysInAContainer starts containers — that run, that fail
// in the child, in the tree or before the clone — and checks that no
// thread of berth's is left in their namespaces afterwards: the threads
// that built their trees end with them, and the main thread — whose view
// /proc/self shows, and which cannot end — never is one of them.
func TestNoThreadStaysInAContainer(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	hostile := testutil.BusyboxRootfs(t)
	if err := os.RemoveAll(filepath.Join(hostile, "proc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/", filepath.Join(hostile, "proc")); err != nil {
		t.Fatal(err)
	}
	own := threadNamespaces(t, "/proc/self")
	starts := []struct {
		rootfs string
		spec   Spec
		fail   string // part of the start error; "" for a clean run
	}{
		{rootfs, Spec{Args: []string{"true"}}, ""},
		{rootfs, Spec{Args: []string{"no-such-command"}}, "not found"},
		{hostile, Spec{Args: []string{"true"}}, "/proc is a symlink"},
		{rootfs, Spec{Args: []string{"true"}, Mounts: []Mount{{Source: "/nonexistent/x", Target: "/x"}}}, "/nonexistent/x"},
	}
	for i := 0; i < 20; i++ {
		s := starts[i%len(starts)]
		exit, out, err := run(t, s.rootfs, s.spec)
		if (err == nil) != (s.fail == "") || (err != nil && !strings.Contains(err.Error(), s.fail)) || (err == nil && exit.Status() != 0) {
			t.Fatalf("start %d: %v (%s) %s, want an error containing %q", i, err, exit, out, s.fail)
		}
	}
	// A builder thread ends just after its container starts.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		tasks, err := filepath.Glob("/proc/self/task/*")
		if err != nil {
			t.Fatal(err)
		}
		var stray []string
		for _, task := range tasks {
			if ns := threadNamespaces(t, task); ns != "" && ns != own {
				stray = append(stray, filepath.Base(task)+": "+ns)
			}
		}
		if len(stray) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads in other namespaces than berth's (%s):\n%s", own, strings.Join(stray, "\n"))
		}
	}
}

// threadNamespaces names the mount, UTS, IPC and network namespaces of
// the task at dir; "" when it is gone.
func threadNamespaces(t *testing.T, dir string) string {
	t.Helper()
	var ns []string
	for _, n := range []string{"mnt", "uts", "ipc", "net"} {
		l, err := os.Readlink(filepath.Join(dir, "ns", n))
		if os.IsNotExist(err) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		ns = append(ns, l)
	}
	return strings.Join(ns, " ")
}
