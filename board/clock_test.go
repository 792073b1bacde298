package board

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeClock is a clock that records how it was changed.
type fakeClock struct {
	now   time.Time
	steps []time.Duration
	slews []time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Step(d time.Duration) error {
	c.steps = append(c.steps, d)
	c.now = c.now.Add(d)
	return nil
}
func (c *fakeClock) Slew(d time.Duration) error { c.slews = append(c.slews, d); return nil }

// TestCorrect: the first correction steps, later ones slew unless the
// offset is beyond the step threshold, either way.
func TestCorrect(t *testing.T) {
	tests := []struct {
		offset time.Duration
		first  bool
		want   Adjustment
	}{
		{20 * 365 * 24 * time.Hour, true, Stepped},
		{time.Millisecond, true, Stepped},
		{time.Millisecond, false, Slewed},
		{-StepThreshold, false, Slewed},
		{StepThreshold, false, Slewed},
		{StepThreshold + time.Millisecond, false, Stepped},
		{-StepThreshold - time.Millisecond, false, Stepped},
		{-3 * time.Hour, false, Stepped},
	}
	for _, tc := range tests {
		c := &fakeClock{now: time.Unix(1e9, 0)}
		got, err := Correct(c, tc.offset, tc.first)
		if err != nil || got != tc.want {
			t.Errorf("Correct(%v, first %v) = %v, %v; want %v", tc.offset, tc.first, got, err, tc.want)
		}
		moved := append(append([]time.Duration{}, c.steps...), c.slews...)
		if len(moved) != 1 || moved[0] != tc.offset {
			t.Errorf("Correct(%v): steps %v slews %v, want one change by the offset", tc.offset, c.steps, c.slews)
		}
	}
}

// TestRestore: the clock goes forward to a later floor and never back.
func TestRestore(t *testing.T) {
	saved := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	c := &fakeClock{now: time.Unix(5, 0)}
	if moved, err := Restore(c, saved); !moved || err != nil || !c.now.Equal(saved) {
		t.Errorf("clock at 1970, saved %v: moved %v, %v, clock %v", saved, moved, err, c.now)
	}
	ahead := saved.Add(time.Hour)
	c = &fakeClock{now: ahead}
	if moved, err := Restore(c, saved); moved || err != nil || len(c.steps) != 0 || !c.now.Equal(ahead) {
		t.Errorf("clock ahead of the saved time: moved %v, %v, steps %v", moved, err, c.steps)
	}
	c = &fakeClock{now: saved}
	if moved, _ := Restore(c, saved); moved || len(c.steps) != 0 {
		t.Errorf("clock at the saved time: stepped %v", c.steps)
	}
}

func TestSplitOffset(t *testing.T) {
	tests := []struct {
		d         time.Duration
		sec, nsec int64
	}{
		{0, 0, 0},
		{1500 * time.Millisecond, 1, 5e8},
		{-1500 * time.Millisecond, -2, 5e8},
		{-time.Second, -1, 0},
		{-time.Nanosecond, -1, 999999999},
		{20 * 365 * 24 * time.Hour, 630720000, 0},
	}
	for _, tc := range tests {
		sec, nsec := splitOffset(tc.d)
		if sec != tc.sec || nsec != tc.nsec {
			t.Errorf("splitOffset(%v) = %d, %d; want %d, %d", tc.d, sec, nsec, tc.sec, tc.nsec)
		}
	}
}

// TestStepParts: a step whose seconds do not fit a 32-bit long (1970 to
// past 2038 on 32-bit ARM) is cut into parts that do and add up to it.
func TestStepParts(t *testing.T) {
	const max32 = 1<<31 - 1
	huge := 70 * 365 * 24 * time.Hour
	tests := []struct {
		d      time.Duration
		maxSec int64
		parts  int
	}{
		{huge + 123, 1<<63 - 1, 1},
		{huge + 123, max32, 2},
		{-huge - 123, max32, 2},
		{time.Hour, max32, 1},
		{-time.Hour, max32, 1},
	}
	for _, tc := range tests {
		parts := stepParts(tc.d, tc.maxSec)
		var sum time.Duration
		for _, p := range parts {
			sum += p
			if sec, nsec := splitOffset(p); sec > tc.maxSec || sec < -tc.maxSec-1 || nsec < 0 || nsec >= 1e9 {
				t.Errorf("stepParts(%v): part %v does not fit: %d s %d ns", tc.d, p, sec, nsec)
			}
		}
		if len(parts) != tc.parts || sum != tc.d {
			t.Errorf("stepParts(%v, %d) = %v (sum %v), want %d parts", tc.d, tc.maxSec, parts, sum, tc.parts)
		}
	}
}

// TestClockRefusedOffInit: on a development host (never PID 1 of the
// initial PID namespace) the system clock and the RTC refuse every
// change before any system call. The RTC is a regular file here, so even
// a missing guard could not reach the host's RTC.
func TestClockRefusedOffInit(t *testing.T) {
	if err := mayChangeClock(); !errors.Is(err, ErrNotMachineInit) {
		t.Fatalf("the test process may change the clock: %v", err)
	}
	var c SystemClock
	if err := c.Step(0); !errors.Is(err, ErrNotMachineInit) {
		t.Errorf("Step: %v", err)
	}
	if err := c.Slew(0); !errors.Is(err, ErrNotMachineInit) {
		t.Errorf("Slew: %v", err)
	}
	fake := filepath.Join(t.TempDir(), "rtc0")
	if err := os.WriteFile(fake, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (RTCDevice{fake}).Set(time.Now()); !errors.Is(err, ErrNotMachineInit) {
		t.Errorf("RTC Set: %v", err)
	}
}

func TestRTCConversion(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 11, 30, 23, 59, 59, 400e6, time.UTC),
		time.Date(2005, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 12, 0, 0, 0, time.FixedZone("CET", 3600)),
	} {
		r := toRTC(tm)
		got, err := fromRTC(r)
		if err != nil || !got.Equal(tm.Round(time.Second)) || got.Location() != time.UTC {
			t.Errorf("%v through the RTC: %v, %v (%+v)", tm, got, err, r)
		}
	}
	// Rounded to the nearest second: 23:59:59.6 is midnight, next year.
	if r := toRTC(time.Date(2026, 12, 31, 23, 59, 59, 600e6, time.UTC)); r.Year != 127 || r.Mon != 0 || r.Mday != 1 || r.Hour != 0 {
		t.Errorf("rounding: %+v", r)
	}
	for _, bad := range []unix.RTCTime{
		{Mday: 0, Year: 126},
		{Mday: 31, Mon: 1, Year: 126},
		{Mday: 1, Year: 126, Hour: 24},
		{Mday: 1, Year: 60},
		{Mday: 1, Mon: 12, Year: 126},
	} {
		if got, err := fromRTC(&bad); err == nil {
			t.Errorf("fromRTC(%+v) = %v, want an error", bad, got)
		}
	}
}
