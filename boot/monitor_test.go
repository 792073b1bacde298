package boot

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// busy keeps one P running until stop is called: with a P busy the
// runtime's monitor polls (usleep, nanosleep(2)) instead of waiting on
// its note, as it does while PID 1 boots.
func busy(t *testing.T) (stop func()) {
	t.Helper()
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs GOMAXPROCS >= 2: the test's own goroutine reads /proc while another keeps a P busy")
	}
	var done atomic.Bool
	go func() {
		for !done.Load() {
		}
	}()
	return func() { done.Store(true) }
}

// inNanosleep counts, over rounds reads of every thread's current
// system call, how often each thread was in nanosleep(2).
func inNanosleep(t *testing.T, rounds int) map[int]int {
	t.Helper()
	seen := map[int]int{}
	for range rounds {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/syscall")
			if err != nil {
				continue
			}
			first, _, _ := bytes.Cut(b, []byte(" "))
			if n, err := strconv.Atoi(string(first)); err == nil && uintptr(n) == unix.SYS_NANOSLEEP {
				tid, _ := strconv.Atoi(e.Name())
				seen[tid]++
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	return seen
}

// The thread findMonitor names is the runtime's monitor: the one found
// in the runtime's usleep far more often than any other while the
// program is busy. This checks the premise (the monitor is the first
// thread the runtime starts) against the Go release berth is built with.
func TestFindMonitor(t *testing.T) {
	defer busy(t)()
	tid, err := findMonitor()
	if err != nil {
		t.Fatal(err)
	}
	if tid == os.Getpid() {
		t.Fatalf("findMonitor named the main thread %d", tid)
	}
	// Read until the monitor has been seen in nanosleep 20 times (it
	// may wait for a CPU after each short sleep on a loaded machine: a
	// share of reads was a timing check), then compare the threads.
	seen := map[int]int{}
	for rounds := 0; seen[tid] < 20; rounds += 100 {
		if rounds >= 100000 {
			t.Fatalf("thread %d was in nanosleep in %d of %d reads; all threads: %v", tid, seen[tid], rounds, seen)
		}
		for k, n := range inNanosleep(t, 100) {
			seen[k] += n
		}
	}
	for other, n := range seen {
		if other != tid && n >= seen[tid] {
			t.Errorf("thread %d was in nanosleep as often (%d) as the monitor %d (%d)", other, n, tid, seen[tid])
		}
	}
}

// TestFindMonitorWrapped runs TestFindMonitor's checks in a process
// whose later threads' ids wrapped past pid_max: the test binary runs
// again as PID 1 of a new PID namespace ("ns"), which sets the
// namespace's last id to pid_max-wrapMargin and starts it once more
// ("run"). Its main thread and its monitor get ids just below pid_max;
// it starts threads until one has a low id.
func TestFindMonitorWrapped(t *testing.T) {
	switch os.Getenv("BERTH_TEST_WRAP") {
	case "run":
		wrapThreads(t)
		TestFindMonitor(t)
		return
	case "ns":
		wrapNamespace(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("a new PID namespace and its ns_last_pid need root")
	}
	if _, err := os.Stat("/proc/sys/kernel/ns_last_pid"); err != nil {
		t.Skipf("no ns_last_pid (a kernel without CONFIG_CHECKPOINT_RESTORE): %v", err)
	}
	out, err := selfTest(t, "ns", &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS})
	if err != nil {
		t.Fatalf("in a new PID namespace: %v\n%s", err, out)
	}
}

// wrapMargin is how far below pid_max TestFindMonitorWrapped's
// namespace starts handing out ids: room for the test binary's main
// thread, its first threads and any thread the namespace's PID 1 starts
// meanwhile, few enough that a dozen more threads wrap.
const wrapMargin = 8

// wrapThreads starts threads (each a goroutine locked to its own,
// blocked until the test ends) until one has an id below the process's
// own, and fails unless a thread other than the main one has an id
// above it (the monitor, started first).
func wrapThreads(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	pid := os.Getpid()
	for range 4 * wrapMargin {
		tids := mustThreadIDs(t)
		if slices.Min(tids) < pid {
			if slices.Max(tids) <= pid {
				t.Fatalf("pid %d: every thread id at or below it: %v", pid, tids)
			}
			t.Logf("pid %d, thread ids %v", pid, tids)
			return
		}
		started := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(started)
			<-release
		}()
		<-started
	}
	t.Fatalf("pid %d: no thread id below it after %d threads: %v", pid, 4*wrapMargin, mustThreadIDs(t))
}

// mustThreadIDs is threadIDs for a test.
func mustThreadIDs(t *testing.T) []int {
	t.Helper()
	tids, err := threadIDs()
	if err != nil {
		t.Fatal(err)
	}
	return tids
}

// wrapNamespace is PID 1 of TestFindMonitorWrapped's namespace: it
// mounts the namespace's /proc, sets its last id and runs the test.
func wrapNamespace(t *testing.T) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pidMax-wrapMargin)), 0); err != nil {
		t.Fatal(err)
	}
	out, err := selfTest(t, "run", nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("%s", out)
	if !bytes.Contains(out, []byte("PASS")) {
		t.Fatalf("no PASS in %s", out)
	}
}

// selfTest runs TestFindMonitorWrapped in a new process of the test
// binary, with BERTH_TEST_WRAP set to stage.
func selfTest(t *testing.T, stage string, attr *syscall.SysProcAttr) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFindMonitorWrapped$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "BERTH_TEST_WRAP="+stage)
	cmd.SysProcAttr = attr
	return cmd.CombinedOutput()
}

// firstAfter orders thread ids as the kernel hands them out, across a
// wrap at pid_max: the CI run that found this had the monitor at 32392
// and later threads at 878 and 1246.
func TestFirstAfter(t *testing.T) {
	for _, c := range []struct {
		name string
		pid  int
		tids []int
		want int
	}{
		{"only main", 100, []int{100}, 0},
		{"none", 100, nil, 0},
		{"no wrap", 100, []int{100, 104, 101, 102}, 101},
		{"PID 1", 1, []int{1, 9, 7, 8}, 7},
		{"wrapped after the monitor", 32380, []int{878, 32380, 1246, 32392}, 32392},
		{"main is pid_max-1", 32767, []int{300, 32767, 301}, 300},
		{"all wrapped, in order", 32000, []int{32000, 5, 3, 4}, 3},
	} {
		if got := firstAfter(c.pid, c.tids); got != c.want {
			t.Errorf("%s: firstAfter(%d, %v) = %d, want %d", c.name, c.pid, c.tids, got, c.want)
		}
	}
}

// slacks reads every thread's timer slack.
func slacks(t *testing.T) map[int]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		b, err := os.ReadFile("/proc/" + e.Name() + "/timerslack_ns")
		if err == nil {
			out[tid] = strings.TrimSpace(string(b))
		}
	}
	return out
}

// slowMonitor changes the monitor's timer slack and no other thread's;
// restoreMonitor puts it back and logs it, once.
func TestSlowMonitor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("another thread's timer slack needs CAP_SYS_NICE")
	}
	defer busy(t)()
	var log bytes.Buffer
	logger := &Logger{w: &log, debug: true}
	monitorLog.Store(logger)
	defer monitorLog.Store(nil)
	before := slacks(t)
	tid, err := slowMonitor()
	if err != nil || tid == 0 {
		t.Fatalf("slowMonitor: %d, %v", tid, err)
	}
	after := slacks(t)
	if want := strconv.FormatInt(bootMonitorSlack.Nanoseconds(), 10); after[tid] != want {
		t.Errorf("monitor %d: slack %q, want %q", tid, after[tid], want)
	}
	for other, v := range after {
		if other != tid && before[other] != "" && v != before[other] {
			t.Errorf("thread %d: slack %q changed to %q", other, before[other], v)
		}
	}
	restoreMonitor()
	logger.Flush(time.Second)
	if got := slacks(t)[tid]; got != before[tid] {
		t.Errorf("after restoreMonitor, monitor %d: slack %q, want %q", tid, got, before[tid])
	}
	if want := "runtime monitor (thread " + strconv.Itoa(tid) + "): default timer slack"; !strings.Contains(log.String(), want) {
		t.Errorf("log %q lacks %q", log.String(), want)
	}
	restoreMonitor() // again: nothing to do, nothing logged
	logger.Flush(time.Second)
	if n := strings.Count(log.String(), "default timer slack"); n != 1 {
		t.Errorf("restoreMonitor logged %d times, want 1", n)
	}
}
