package boot

import (
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

// While PID 1 boots, the Go runtime's monitor thread (sysmon) sleeps
// longer between its rounds. sysmon sleeps 20 µs at a time for as long
// as the program is busy — it doubles the sleep only after 50 rounds
// that found nothing to do — and on a board's one slow CPU each round is
// a timer interrupt and two context switches. berth cannot change the
// runtime, but it can give that one thread a timer slack
// (/proc/TID/timerslack_ns, Linux 4.6; the file is only in a process's
// directory, and /proc/TID is a thread's own): the kernel may then
// end its 20 µs sleeps up to bootMonitorSlack later, and ends them at the
// next interrupt it takes anyway. The cost: a goroutine that blocks in a
// system call keeps its P up to that much longer before the monitor
// hands the P to another goroutine, which only matters when every P is
// taken — one CPU. The boot is over, for the monitor as for the
// collector, when the images are all ready: the slack goes back to the
// kernel's default then (restoreMonitor).
const bootMonitorSlack = 2 * time.Millisecond

// monitorTID is the monitor's thread id while slowMonitor has slowed it.
var monitorTID atomic.Int64

// slowMonitor gives the runtime's monitor thread bootMonitorSlack and
// returns its thread id. It needs CAP_SYS_NICE, which PID 1 has.
func slowMonitor() (int, error) {
	tid, err := findMonitor()
	if err != nil {
		return 0, err
	}
	if err := setSlack(tid, bootMonitorSlack); err != nil {
		return 0, err
	}
	monitorTID.Store(int64(tid))
	return tid, nil
}

// restoreMonitor gives the monitor thread the kernel's default timer
// slack back, if slowMonitor changed it, and logs what it did. It is
// safe to call again: only the first call after slowMonitor acts.
func restoreMonitor() {
	tid := int(monitorTID.Swap(0))
	if tid == 0 {
		return
	}
	err := setSlack(tid, 0) // 0: the thread's default
	log := monitorLog.Load()
	switch {
	case log == nil:
	case err != nil:
		log.Printf("warning: %v", err)
	default:
		log.Debugf("runtime monitor (thread %d): default timer slack", tid)
	}
}

// setSlack writes a thread's timer slack; 0 restores its default.
func setSlack(tid int, d time.Duration) error {
	path := fmt.Sprintf("/proc/%d/timerslack_ns", tid)
	if err := os.WriteFile(path, []byte(strconv.FormatInt(d.Nanoseconds(), 10)), 0); err != nil {
		return fmt.Errorf("runtime monitor: timer slack: %w", err)
	}
	return nil
}

// findMonitor returns the thread id of the runtime's monitor: the
// first thread the runtime starts (runtime.main starts it before any
// package is initialised), so the first id handed out after the main
// thread's (firstAfter).
func findMonitor() (int, error) {
	tids, err := threadIDs()
	if err != nil {
		return 0, fmt.Errorf("runtime monitor: %w", err)
	}
	first := firstAfter(os.Getpid(), tids)
	if first == 0 {
		return 0, fmt.Errorf("runtime monitor: no thread but the main one in /proc/self/task")
	}
	return first, nil
}

// threadIDs lists the process's thread ids (/proc/self/task).
func threadIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// firstAfter returns, of tids, the id the kernel handed out first after
// pid, or 0 if there is none but pid. Ids grow as they are handed out
// until they reach pid_max and wrap to low numbers: an id above pid was
// handed out before any id below it. PID 1's ids cannot have wrapped
// before its monitor started, but a process started near pid_max (a
// test binary on a busy machine with pid_max 32768) sees its later
// threads numbered below its own id.
func firstAfter(pid int, tids []int) int {
	above, below := 0, 0
	for _, tid := range tids {
		switch {
		case tid > pid && (above == 0 || tid < above):
			above = tid
		case tid < pid && (below == 0 || tid < below):
			below = tid
		}
	}
	if above != 0 {
		return above
	}
	return below
}

// monitorLog is where slowMonitorLogged and restoreMonitor report.
var monitorLog atomic.Pointer[Logger]

// slowMonitorLogged runs slowMonitor for PID 1, reporting to log: a
// failure is a warning, and the boot goes on at the runtime's pace.
func slowMonitorLogged(log *Logger) {
	monitorLog.Store(log)
	tid, err := slowMonitor()
	if err != nil {
		log.Printf("warning: %v", err)
		return
	}
	log.Debugf("runtime monitor (thread %d): timer slack %v until the images are ready", tid, bootMonitorSlack)
}
