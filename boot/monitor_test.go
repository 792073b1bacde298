package boot

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
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
