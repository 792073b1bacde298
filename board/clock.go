package board

import (
	"errors"
	"fmt"
	"math"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The system clock as berth keeps it: stepped once at boot (to the latest
// of the RTC and the saved time, then to the first SNTP answer), slewed
// afterwards. Only the machine's init may change it: SystemClock and
// RTCDevice refuse in any other process, so no test on a development
// host can reach the host's clock.

// Clock is the system clock as the time keeping sees it. SystemClock is
// the machine's; tests inject their own.
type Clock interface {
	Now() time.Time
	// Step jumps the clock by d at once.
	Step(d time.Duration) error
	// Slew has the kernel run the clock faster or slower until it has
	// gained d, at most MaxSlew, replacing any slew still under way.
	Slew(d time.Duration) error
}

// StepThreshold is the largest offset berth slews away after the boot
// step: the kernel slews at 500 ppm, so 0.5 s takes 1000 s — within one
// poll at the longest interval (1024 s). A larger offset is stepped.
const StepThreshold = 500 * time.Millisecond

// MaxSlew bounds a slew: one that large takes the kernel 1000 s.
const MaxSlew = StepThreshold

// Adjustment is how Correct changed the clock.
type Adjustment string

// The adjustments.
const (
	Stepped Adjustment = "step"
	Slewed  Adjustment = "slew"
)

// Correct moves c by offset: a step for the first correction since boot
// (first) and for an offset beyond StepThreshold, a slew otherwise.
func Correct(c Clock, offset time.Duration, first bool) (Adjustment, error) {
	if first || offset.Abs() > StepThreshold {
		return Stepped, c.Step(offset)
	}
	return Slewed, c.Slew(offset)
}

// Restore moves c forward to floor when it is behind it, never back, and
// reports whether it did. A floor is a time known to have passed: the
// RTC's, or the last time berth saved.
func Restore(c Clock, floor time.Time) (bool, error) {
	now := c.Now()
	if !now.Before(floor) {
		return false, nil
	}
	return true, c.Step(floor.Sub(now))
}

// ErrNotMachineInit is the refusal of SystemClock and RTCDevice to change
// a clock outside the machine's init.
var ErrNotMachineInit = errors.New("only the machine's init (PID 1 of the initial PID namespace) changes the clock")

// procPidInitIno is the inode of the initial PID namespace
// (PROC_PID_INIT_INO in the kernel's include/linux/proc_ns.h).
const procPidInitIno = 0xEFFFFFFC

// mayChangeClock allows a clock change only in the machine's init: PID 1
// of the initial PID namespace, with /proc mounted to prove the latter.
// A container's first process is PID 1 of its own namespace only.
func mayChangeClock() error {
	if os.Getpid() != 1 {
		return ErrNotMachineInit
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil || st.Ino != procPidInitIno {
		return ErrNotMachineInit
	}
	return nil
}

// SystemClock is the machine's clock (CLOCK_REALTIME). Step and Slew
// refuse with ErrNotMachineInit outside the machine's init.
type SystemClock struct{}

// Now reads the clock.
func (SystemClock) Now() time.Time { return time.Now() }

// Step cancels any slew under way and jumps the clock by d:
// adjtimex(ADJ_SETOFFSET|ADJ_NANO), which moves it by exactly d however
// long the call takes.
func (SystemClock) Step(d time.Duration) error {
	if err := mayChangeClock(); err != nil {
		return err
	}
	if err := slew(0); err != nil {
		return err
	}
	var tx unix.Timex
	for _, part := range stepParts(d, maxLong(tx.Time.Sec)) {
		sec, nsec := splitOffset(part)
		tx = unix.Timex{Modes: unix.ADJ_SETOFFSET | unix.ADJ_NANO}
		setLong(&tx.Time.Sec, sec)
		setLong(&tx.Time.Usec, nsec) // nanoseconds, with ADJ_NANO
		if _, err := unix.Adjtimex(&tx); err != nil {
			return fmt.Errorf("step the clock by %v: adjtimex: %w", d, err)
		}
	}
	return nil
}

// Slew has the kernel gain d gradually (adjtimex ADJ_OFFSET_SINGLESHOT,
// as adjtime(3) does: 500 µs per second).
func (SystemClock) Slew(d time.Duration) error {
	if err := mayChangeClock(); err != nil {
		return err
	}
	if d.Abs() > MaxSlew {
		return fmt.Errorf("slew the clock by %v: more than %v, it must be stepped", d, MaxSlew)
	}
	return slew(d)
}

func slew(d time.Duration) error {
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT}
	setLong(&tx.Offset, d.Microseconds())
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("slew the clock by %v: adjtimex: %w", d, err)
	}
	return nil
}

// splitOffset splits d into the seconds and nanoseconds of a normalised
// timespec, 0 <= nsec < 1e9, as ADJ_SETOFFSET requires: -1.5 s is -2 s
// plus 0.5e9 ns.
func splitOffset(d time.Duration) (sec, nsec int64) {
	sec, nsec = int64(d/time.Second), int64(d%time.Second)
	if nsec < 0 {
		sec, nsec = sec-1, nsec+int64(time.Second)
	}
	return sec, nsec
}

// stepParts cuts a step into parts whose seconds fit a C long of
// maxSec: on 32-bit architectures a step from 1970 past 2038 takes two.
func stepParts(d time.Duration, maxSec int64) []time.Duration {
	var parts []time.Duration
	if maxSec < int64(math.MaxInt64/time.Second) {
		// One second spare: a negative part's fraction borrows one.
		limit := time.Duration(maxSec-1) * time.Second
		for d.Abs() > limit {
			part := limit
			if d < 0 {
				part = -limit
			}
			parts = append(parts, part)
			d -= part
		}
	}
	return append(parts, d)
}

// setLong stores v in a field that is a C long: 32 bits on 32-bit
// architectures, 64 on the others.
func setLong[T ~int32 | ~int64](p *T, v int64) { *p = T(v) }

// maxLong is the largest value of a C long field such as p.
func maxLong[T ~int32 | ~int64](T) int64 {
	if unsafe.Sizeof(T(0)) == 4 {
		return 1<<31 - 1
	}
	return 1<<63 - 1
}
