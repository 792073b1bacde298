package container

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/internal/safe"
	"berth/internal/testutil"
)

// threadsHome waits until every thread of the process is in its own
// namespace of kind (mnt, pid_for_children: a name under /proc/self/ns),
// failing the test after a while: a thread that panicked in a
// container's namespaces must end, not serve other goroutines.
func threadsHome(t *testing.T, kind string) {
	t.Helper()
	ns, err := os.Readlink("/proc/self/ns/" + kind)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		var inside []string
		for _, task := range tasks {
			if l, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/" + kind); err == nil && l != ns {
				inside = append(inside, task.Name()+": "+l)
			}
		}
		if len(inside) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads left in another %s namespace than %s: %v", kind, ns, inside)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBuilderPanic: a panic on the builder's thread, once in the
// container's namespaces, fails that start with an error naming it; the
// process lives on, the thread ends, and the next start works.
func TestBuilderPanic(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	builderHook = func() { panic("builder test panic") }
	_, _, err := run(t, rootfs, Spec{Args: []string{"true"}})
	builderHook = nil
	if err == nil || !strings.Contains(err.Error(), "build the container's tree: internal error (panic: builder test panic)") ||
		!strings.Contains(err.Error(), "buildTree") {
		t.Fatalf("start with a panicking builder: %v", err)
	}
	threadsHome(t, "mnt")
	threadsHome(t, "net")
	if exit, out, err := run(t, rootfs, Spec{Args: []string{"true"}}); err != nil || exit.Status() != 0 {
		t.Fatalf("start after the panic: %v, %s (%s)", err, exit, out)
	}
}

// TestExecPanic: a panic on the thread that joined the container's PID
// namespace to clone an exec'd child fails that exec with an error naming
// it; the thread goes back (or ends), the process and the container live
// on, and the next exec works.
func TestExecPanic(t *testing.T) {
	c := startRunning(t, testutil.BusyboxRootfs(t), Spec{})
	execHook = func() { panic("exec test panic") }
	_, _, err := execOutput(t, c, ExecOptions{Args: []string{"true"}})
	execHook = nil
	if err == nil || !strings.Contains(err.Error(), "exec: clone into the container's PID namespace: internal error (panic: exec test panic)") ||
		!strings.Contains(err.Error(), "cloneFromPIDNS") {
		t.Fatalf("exec with a panicking clone: %v", err)
	}
	threadsHome(t, "pid_for_children")
	if ws, out, err := execOutput(t, c, ExecOptions{Args: []string{"true"}}); err != nil || ws.ExitStatus() != 0 {
		t.Fatalf("exec after the panic: %v, %v (%s)", err, ws, out)
	}
}

// TestExecPanicAfterClone: a panic once the exec's child exists (here in
// the test hook that runs right after the clone) must not leave that
// child running unowned in the container: Exec kills it through its
// pidfd as the panic goes by, and the panic still reaches the caller.
func TestExecPanicAfterClone(t *testing.T) {
	c := startRunning(t, testutil.BusyboxRootfs(t), Spec{})
	child := 0
	execCloned = func(pid int) { child = pid; panic("after the clone") }
	err := safe.Call("exec", func() error {
		_, err := c.Exec(ExecOptions{Args: []string{"sleep", "777"}})
		return err
	})
	execCloned = nil
	if err == nil || !strings.Contains(err.Error(), "after the clone") || child == 0 {
		t.Fatalf("exec with a panic after the clone: %v (child %d), want the panic", err, child)
	}
	ended := make(chan syscall.WaitStatus, 1)
	go func() { ended <- waitPid(t, child) }()
	select {
	case ws := <-ended:
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("the exec's child ended %v, want killed", ws)
		}
	case <-time.After(time.Minute): // a hang guard: the old code left sleep 777 running
		t.Fatalf("the exec's child %d still runs after the panic", child)
	}
	threadsHome(t, "pid_for_children")
	if ws, out, err := execOutput(t, c, ExecOptions{Args: []string{"true"}}); err != nil || ws.ExitStatus() != 0 {
		t.Fatalf("exec after the panic: %v, %v (%s)", err, ws, out)
	}
}
