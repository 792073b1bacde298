package boot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/board"
)

// testClock is a clock that records how it was changed.
type testClock struct {
	mu    sync.Mutex
	now   time.Time
	steps []time.Duration
	slews []time.Duration
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Step(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps = append(c.steps, d)
	c.now = c.now.Add(d)
	return nil
}
func (c *testClock) Slew(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slews = append(c.slews, d)
	return nil
}

// testRTC is an RTC in memory.
type testRTC struct {
	t    time.Time
	err  error
	sets []time.Time
}

func (r *testRTC) Read() (time.Time, error) { return r.t, r.err }
func (r *testRTC) Set(t time.Time) error {
	r.sets = append(r.sets, t)
	r.t = t
	return nil
}

// answers is a scripted SNTP: each query takes the next sample or error.
type answers struct {
	samples []board.Sample
	errs    []error
	asked   int
}

func (a *answers) query(ctx context.Context, servers []string) (board.Sample, error) {
	i := a.asked
	a.asked++
	if i < len(a.errs) && a.errs[i] != nil {
		return board.Sample{}, a.errs[i]
	}
	return a.samples[i], nil
}

var (
	t1970 = time.Date(1970, 1, 1, 0, 0, 5, 0, time.UTC)
	t2005 = time.Date(2005, 1, 1, 0, 0, 3, 0, time.UTC)
	t2026 = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
)

// testKeeper is a timekeeper as PID 1 on fakes, logging to log.
func testKeeper(t *testing.T, clock *testClock, rtc *testRTC, keep bool) (*timekeeper, flushedLog) {
	log := &bytes.Buffer{}
	tk := newTimekeeper(NewLogger(log), clock, keep, t.TempDir(), []string{"10.0.2.2"})
	if rtc != nil {
		tk.rtc, tk.rtcName = rtc, "/dev/rtc0"
	}
	return tk, flushedLog{tk.log, log}
}

// TestTimekeeperStepThenSlew: the first answer steps the clock however
// small the offset, later small ones slew it and large ones step it; each
// answer writes the RTC, a step saves the time, and the polls back off
// from 64 s to 1024 s.
func TestTimekeeperStepThenSlew(t *testing.T) {
	clock := &testClock{now: t2005}
	rtc := &testRTC{t: t2005}
	tk, log := testKeeper(t, clock, rtc, true)
	offsets := []time.Duration{t2026.Sub(t2005), 3 * time.Millisecond, -200 * time.Millisecond, 2 * time.Second, time.Millisecond, time.Millisecond, time.Millisecond}
	a := &answers{}
	for _, o := range offsets {
		a.samples = append(a.samples, board.Sample{Server: "10.0.2.2", Offset: o, Stratum: 2})
	}
	tk.query = a.query
	var delays []time.Duration
	for range offsets {
		delays = append(delays, tk.syncOnce(context.Background()))
	}
	wantSteps := []time.Duration{offsets[0], offsets[3]}
	wantSlews := []time.Duration{offsets[1], offsets[2], offsets[4], offsets[5], offsets[6]}
	if !equalDurations(clock.steps, wantSteps) || !equalDurations(clock.slews, wantSlews) {
		t.Errorf("steps %v slews %v, want %v and %v", clock.steps, clock.slews, wantSteps, wantSlews)
	}
	wantDelays := []time.Duration{64 * time.Second, 128 * time.Second, 256 * time.Second, 512 * time.Second, 1024 * time.Second, 1024 * time.Second, 1024 * time.Second}
	if !equalDurations(delays, wantDelays) {
		t.Errorf("poll delays %v, want %v", delays, wantDelays)
	}
	if len(rtc.sets) != len(offsets) || !rtc.sets[0].Equal(t2026) {
		t.Errorf("RTC writes %v, want one per answer, the first %v", rtc.sets, t2026)
	}
	if saved, err := board.LoadTime(tk.saveDir); err != nil || saved.Before(t2026) {
		t.Errorf("saved time after the step: %v, %v", saved, err)
	}
	ci := tk.info()
	if ci.Source != "sntp 10.0.2.2 stratum 2" || ci.LastAdjust != "slew" || ci.LastOffsetSec == nil || *ci.LastOffsetSec != 0.001 ||
		ci.RTC != "/dev/rtc0" || ci.RTCTime == nil || ci.NextSync == nil || ci.LastError != "" {
		t.Errorf("status: %+v", ci)
	}
	if !strings.Contains(log.String(), "clock stepped by +8003d7h59m57s, 2005-01-01T00:00:03Z -> 2026-11-30T08:00:00Z (sntp 10.0.2.2 stratum 2") {
		t.Errorf("log:\n%s", log)
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOffsetString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                        "+0s",
		3200 * time.Microsecond:  "+3.2ms",
		-1500 * time.Millisecond: "-1.5s",
		time.Hour + 1234:         "+1h0m0.000001s",
		-(2*24*time.Hour + 3*time.Hour + 1500*time.Millisecond): "-2d3h0m1.5s",
	} {
		if got := offsetString(d); got != want {
			t.Errorf("offsetString(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestTimekeeperRetries: until the first answer the retries back off from
// 1 s to 32 s — the uplink may come up any moment — and once synced from
// 64 s to 1024 s; only the first failure of a run is logged.
func TestTimekeeperRetries(t *testing.T) {
	clock := &testClock{now: t2005}
	tk, log := testKeeper(t, clock, nil, true)
	down := errors.New("sntp 10.0.2.2: network is unreachable")
	a := &answers{errs: []error{down, down, down, down, down, down, down, nil, down, down, down, down, down, down},
		samples: make([]board.Sample, 14)}
	a.samples[7] = board.Sample{Server: "10.0.2.2", Offset: time.Hour, Stratum: 1}
	tk.query = a.query
	var delays []time.Duration
	for range a.errs {
		delays = append(delays, tk.syncOnce(context.Background()))
	}
	s := time.Second
	want := []time.Duration{s, 2 * s, 4 * s, 8 * s, 16 * s, 32 * s, 32 * s, 64 * s, 64 * s, 128 * s, 256 * s, 512 * s, 1024 * s, 1024 * s}
	if !equalDurations(delays, want) {
		t.Errorf("delays %v, want %v", delays, want)
	}
	if n := strings.Count(log.String(), "network is unreachable"); n != 2 {
		t.Errorf("%d failures logged, want the first of each run:\n%s", n, log)
	}
	if ci := tk.info(); ci.LastError != down.Error() || ci.Source != "sntp 10.0.2.2 stratum 1" {
		t.Errorf("status: %+v", ci)
	}
}

// failingClock refuses every change, as the system clock does off init.
type failingClock struct{ testClock }

func (c *failingClock) Step(d time.Duration) error { return board.ErrNotMachineInit }

// TestTimekeeperStepFails: a step that fails is a failed sync — retried,
// shown in status — and the next answer is stepped again.
func TestTimekeeperStepFails(t *testing.T) {
	clock := &failingClock{testClock{now: t2005}}
	log := &bytes.Buffer{}
	tk := newTimekeeper(NewLogger(log), clock, true, t.TempDir(), []string{"10.0.2.2"})
	a := &answers{samples: []board.Sample{{Server: "10.0.2.2", Offset: time.Millisecond, Stratum: 2}, {Server: "10.0.2.2", Offset: time.Millisecond, Stratum: 2}}}
	tk.query = a.query
	if d := tk.syncOnce(context.Background()); d != firstRetry {
		t.Errorf("retry in %v, want %v", d, firstRetry)
	}
	tk.syncOnce(context.Background())
	if ci := tk.info(); ci.LastError != board.ErrNotMachineInit.Error() || ci.Source != "none" || ci.LastSync != nil {
		t.Errorf("status: %+v", ci)
	}
	if len(clock.slews) != 0 {
		t.Errorf("slewed %v before any step succeeded", clock.slews)
	}
}

// TestTimekeeperRestore: at boot the clock goes forward to the latest of
// the RTC and the saved time, never back; the status names the source.
func TestTimekeeperRestore(t *testing.T) {
	tests := []struct {
		name   string
		clock  time.Time
		rtc    *testRTC
		saved  string // file content; "" none
		want   time.Time
		source string
		log    string
	}{
		{"no RTC, saved time", t1970, nil, "2026-11-30T08:00:00Z\n", t2026, "saved time",
			"clock was 1970-01-01T00:00:05Z, restored to the last saved time 2026-11-30T08:00:00Z"},
		{"RTC set by the kernel, older saved time", t2026, &testRTC{t: t2026.Add(-time.Second)}, "2005-01-01T00:00:00Z\n", t2026, "rtc",
			"clock 2026-11-30T08:00:00Z, from the RTC /dev/rtc0"},
		{"RTC behind the saved time", t2005, &testRTC{t: t2005}, "2026-11-30T08:00:00Z\n", t2026, "saved time", "restored to the last saved time"},
		{"RTC a second ahead of the clock the kernel set from it", t2005.Add(-999 * time.Millisecond), &testRTC{t: t2005}, "", t2005.Add(-999 * time.Millisecond), "rtc",
			"clock 2005-01-01T00:00:02Z, from the RTC /dev/rtc0"},
		{"RTC the kernel did not read", t1970, &testRTC{t: t2005}, "", t2005, "rtc",
			"clock was 1970-01-01T00:00:05Z, set from the RTC /dev/rtc0: 2005-01-01T00:00:03Z"},
		{"clock ahead of everything", t2026, nil, "2005-01-01T00:00:00Z\n", t2026, "none",
			"clock 2026-11-30T08:00:00Z, ahead of the last saved time 2005-01-01T00:00:00Z; no RTC"},
		{"nothing", t1970, nil, "", t1970, "none", "no RTC and no saved time"},
		{"corrupt saved time", t1970, nil, "2026-13-01\n", t1970, "none", "not an RFC 3339 time"},
		{"saved time in 2150", t1970, nil, "2150-01-01T00:00:00Z\n", t1970, "none", "outside 1970-2099"},
		{"unreadable RTC", t1970, &testRTC{err: errors.New("read RTC /dev/rtc0: invalid time")}, "2026-11-30T08:00:00Z\n", t2026, "saved time",
			"warning: read RTC /dev/rtc0: invalid time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &testClock{now: tc.clock}
			tk, log := testKeeper(t, clock, tc.rtc, true)
			if tc.saved != "" {
				if err := os.WriteFile(filepath.Join(tk.saveDir, board.SavedTimeFile), []byte(tc.saved), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			tk.restore()
			if !clock.now.Equal(tc.want) || tk.info().Source != tc.source || !strings.Contains(log.String(), tc.log) {
				t.Errorf("clock %v (steps %v), source %q; want %v, %q, log %q:\n%s", clock.now, clock.steps, tk.info().Source, tc.want, tc.source, tc.log, log)
			}
			for _, d := range clock.steps {
				if d < 0 {
					t.Errorf("stepped back by %v", d)
				}
			}
		})
	}
}

// TestTimekeeperSaveFloor: before SNTP answers, a save never writes less
// than the saved time found at boot (a restore that failed must not lose
// it); after it, the clock is saved as it is, even when SNTP put it back.
func TestTimekeeperSaveFloor(t *testing.T) {
	clock := &testClock{now: t1970}
	tk, _ := testKeeper(t, clock, nil, true)
	if err := board.SaveTime(tk.saveDir, t2026); err != nil {
		t.Fatal(err)
	}
	tk.floor = t2026 // as restore finds it; the clock stays at 1970
	tk.save()
	if saved, _ := board.LoadTime(tk.saveDir); !saved.Equal(t2026) {
		t.Errorf("saved %v over the boot's %v", saved, t2026)
	}
	a := &answers{samples: []board.Sample{{Server: "10.0.2.2", Offset: t2005.Sub(t1970), Stratum: 2}}}
	tk.query = a.query
	tk.syncOnce(context.Background())
	tk.save()
	if saved, _ := board.LoadTime(tk.saveDir); !saved.Equal(t2005) {
		t.Errorf("saved %v after SNTP said %v", saved, t2005)
	}
}

// TestTimekeeperObserves: under berth boot on a host the timekeeper
// measures the offset but changes no clock, RTC or file.
func TestTimekeeperObserves(t *testing.T) {
	clock := &testClock{now: t2026}
	tk, log := testKeeper(t, clock, nil, false)
	tk.query = (&answers{samples: []board.Sample{{Server: "10.0.2.2", Offset: time.Hour, Stratum: 2}}}).query
	tk.syncOnce(context.Background())
	tk.save()
	if len(clock.steps)+len(clock.slews) != 0 {
		t.Errorf("the host's clock was changed: %v %v", clock.steps, clock.slews)
	}
	if entries, _ := os.ReadDir(tk.saveDir); len(entries) != 0 {
		t.Errorf("files written: %v", entries)
	}
	ci := tk.info()
	if ci.Source != "host" || *ci.LastOffsetSec != 3600 || ci.LastAdjust != "" || ci.SavedTime != "" {
		t.Errorf("status: %+v", ci)
	}
	if !strings.Contains(log.String(), "says this host's clock is off by +1h0m0s (berth boot leaves it alone)") {
		t.Errorf("log:\n%s", log)
	}
}

// TestTimekeeperLoop: the goroutine syncs at once, syncs again when a
// reload changes the servers, and stops, saving the time, when asked.
func TestTimekeeperLoop(t *testing.T) {
	clock := &testClock{now: t2026}
	tk, _ := testKeeper(t, clock, nil, true)
	asked := make(chan []string)
	tk.query = func(ctx context.Context, servers []string) (board.Sample, error) {
		asked <- servers
		return board.Sample{Server: servers[0], Offset: time.Millisecond, Stratum: 2}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	tk.cancel, tk.done = cancel, make(chan struct{})
	go func() { defer close(tk.done); tk.run(ctx) }()
	if got := <-asked; got[0] != "10.0.2.2" {
		t.Errorf("asked %v", got)
	}
	tk.setServers([]string{"192.0.2.1:1123"})
	if got := <-asked; got[0] != "192.0.2.1:1123" {
		t.Errorf("after the reload asked %v", got)
	}
	tk.stop()
	if saved, err := board.LoadTime(tk.saveDir); err != nil || !saved.Equal(clock.Now()) {
		t.Errorf("saved at stop: %v, %v; clock %v", saved, err, clock.Now())
	}
}
