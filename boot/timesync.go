package boot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"berth/board"
)

// Time keeping. As PID 1 berth keeps the machine's clock: at boot it moves
// the clock forward to the latest of the RTC and the saved time; then, on
// its own goroutine, it asks the [network] ntp servers (SNTP), steps the
// clock to the first answer and slews it to later ones, writes the RTC
// after each sync and saves the time at intervals and at shutdown. Under
// `berth boot` on a development host it only measures: the host's clock,
// RTC and saved time are never touched.

// The sync schedule (decisions in the README).
const (
	// sntpTimeout bounds one server's answer.
	sntpTimeout = 3 * time.Second
	// Until the first answer, retries back off from firstRetry to
	// maxBootRetry: the uplink comes up whenever DHCP finishes.
	firstRetry   = time.Second
	maxBootRetry = 32 * time.Second
	// Polls then start at minPoll and double to maxPoll with each answer,
	// as SNTP clients do (RFC 4330); failures back off over the same range.
	minPoll = 64 * time.Second
	maxPoll = 1024 * time.Second
	// saveInterval is how often the time is saved besides at shutdown:
	// after a power cut the clock restarts at most this far behind.
	saveInterval = 15 * time.Minute
)

// ClockInfo is the clock as berth status shows it.
type ClockInfo struct {
	// Time is the clock's reading when the status was taken.
	Time time.Time `json:"time"`
	// Source is what the clock was last set from: "sntp SERVER stratum
	// N", "rtc", "saved time" or "none"; "host" under berth boot, which
	// leaves the host's clock alone.
	Source  string   `json:"source"`
	Servers []string `json:"servers,omitempty"`
	// LastSync is the last SNTP answer; LastOffsetSec how far the clock
	// was behind the server then (negative: ahead), and LastAdjust how
	// it was corrected: "step" or "slew" (none under berth boot).
	LastSync      *time.Time `json:"last_sync,omitempty"`
	LastOffsetSec *float64   `json:"last_offset_seconds,omitempty"`
	LastAdjust    string     `json:"last_adjust,omitempty"`
	NextSync      *time.Time `json:"next_sync,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	// RTC is the RTC's device, or "none"; RTCTime its reading.
	RTC      string     `json:"rtc"`
	RTCTime  *time.Time `json:"rtc_time,omitempty"`
	RTCError string     `json:"rtc_error,omitempty"`
	// SavedTime is the file that keeps the time across reboots.
	SavedTime string `json:"saved_time_file,omitempty"`
}

// timekeeper keeps the clock; its methods are safe from any goroutine.
type timekeeper struct {
	log   *Logger
	clock board.Clock
	// rtc is nil without an RTC (and under berth boot); rtcName names it.
	rtc     board.RTC
	rtcName string
	// keep is set as PID 1: the clock, the RTC and the saved time are
	// changed. Otherwise the timekeeper only measures.
	keep bool
	// saveDir holds the saved time (savedTimeDir).
	saveDir string
	query   func(ctx context.Context, servers []string) (board.Sample, error)

	mu         sync.Mutex
	servers    []string
	source     string
	synced     bool
	lastSync   time.Time
	lastOffset time.Duration
	lastAdjust board.Adjustment
	lastError  string
	nextSync   time.Time
	failures   int
	interval   time.Duration
	// floor is the saved time found at boot: until SNTP has answered, a
	// save never writes less (a clock whose restore failed must not
	// overwrite the time it could not restore).
	floor time.Time

	rtcMu  sync.Mutex // the RTC device opens exclusively
	saveMu sync.Mutex

	wake     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// newTimekeeper is a timekeeper on the given clock that asks servers.
func newTimekeeper(log *Logger, clock board.Clock, keep bool, saveDir string, servers []string) *timekeeper {
	tk := &timekeeper{
		log: log, clock: clock, keep: keep, saveDir: saveDir, servers: servers,
		source: "host", interval: minPoll, wake: make(chan struct{}, 1), rtcName: "none",
		query: func(ctx context.Context, servers []string) (board.Sample, error) {
			return board.BestSample(ctx, servers, sntpTimeout)
		},
	}
	if keep {
		tk.source = "none"
	}
	return tk
}

// savedTimeDir is where the time is saved: berth's state directory. When
// berth's state moves to a data partition, this moves with it.
func (b *booter) savedTimeDir() string { return b.opts.StateDir }

// startClock is the clock phase: as PID 1 the clock is moved forward to
// the RTC's or the saved time; then the sync goroutine starts. It never
// waits for the network.
func (b *booter) startClock() error {
	tk := newTimekeeper(b.log, board.SystemClock{}, b.opts.PID1, b.savedTimeDir(), b.cfg.Network.NTP)
	if b.opts.PID1 {
		if _, err := os.Stat(board.DefaultRTC); err == nil {
			tk.rtc, tk.rtcName = board.RTCDevice{Path: board.DefaultRTC}, board.DefaultRTC
		}
		tk.restore()
	}
	b.clock = tk
	ctx, cancel := context.WithCancel(context.Background())
	tk.cancel, tk.done = cancel, make(chan struct{})
	b.goSafe(func() {
		defer close(tk.done)
		tk.run(ctx)
	})
	return nil
}

// stopClock ends the sync goroutine and, as PID 1, saves the time.
func (b *booter) stopClock() {
	if b.clock != nil {
		b.clock.stop()
	}
}

// restore moves the clock forward to the latest of the RTC's time and the
// saved time, never back, and says on the console where the time came
// from.
func (tk *timekeeper) restore() {
	was := tk.clock.Now()
	var rtcTime time.Time
	rtcOK := false
	if tk.rtc != nil {
		t, err := tk.readRTC()
		if err != nil {
			tk.log.Printf("warning: %v", err)
		}
		rtcTime, rtcOK = t, err == nil
	}
	saved, err := board.LoadTime(tk.saveDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		tk.log.Printf("warning: %v: ignored", err)
	default:
		tk.floor = saved
	}
	// The RTC counts whole seconds: a clock the kernel set from it can
	// read up to a second behind it, and is not moved for that.
	var floor time.Time
	from := "the RTC's time"
	if rtcOK && rtcTime.Sub(was) > time.Second {
		floor = rtcTime
	}
	if tk.floor.After(floor) {
		floor, from = tk.floor, "the last saved time"
	}
	moved, err := board.Restore(tk.clock, floor)
	tk.mu.Lock()
	defer tk.mu.Unlock()
	switch {
	case err != nil:
		tk.log.Printf("warning: clock %s: could not restore %s %s: %v", stamp(was), from, stamp(floor), err)
	case moved && floor.Equal(tk.floor):
		tk.source = "saved time"
		tk.log.Printf("clock was %s, restored to the last saved time %s", stamp(was), stamp(floor))
	case moved:
		tk.source = "rtc"
		tk.log.Printf("clock was %s, set from the RTC %s: %s", stamp(was), tk.rtcName, stamp(floor))
	case rtcOK:
		tk.source = "rtc"
		tk.log.Printf("clock %s, from the RTC %s", stamp(was), tk.rtcName)
	case !tk.floor.IsZero():
		tk.log.Printf("clock %s, ahead of the last saved time %s; no RTC", stamp(was), stamp(tk.floor))
	case len(tk.servers) == 0:
		tk.log.Printf("clock %s: no RTC, no saved time and no [network] ntp servers: it is wrong", stamp(was))
	default:
		tk.log.Printf("clock %s: no RTC and no saved time: it is wrong until an SNTP server answers", stamp(was))
	}
}

// offsetString formats an offset for the log: "+3.2ms", "-1.5s",
// "+8003d8h17m16.609s".
func offsetString(d time.Duration) string {
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	const day = 24 * time.Hour
	if d < day {
		return sign + d.Round(time.Microsecond).String()
	}
	return fmt.Sprintf("%s%dd%v", sign, d/day, (d % day).Round(time.Millisecond))
}

// stamp formats t for the log, to the second.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// run syncs on schedule, and saves the time, until ctx ends.
func (tk *timekeeper) run(ctx context.Context) {
	save := time.NewTicker(saveInterval)
	defer save.Stop()
	next := time.NewTimer(0)
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-save.C:
			tk.save()
		case <-tk.wake:
			next.Reset(0)
		case <-next.C:
			next.Reset(tk.syncOnce(ctx))
		}
	}
}

// setServers replaces the servers (a reload) and, when they changed,
// syncs at once.
func (tk *timekeeper) setServers(servers []string) {
	tk.mu.Lock()
	changed := !slices.Equal(tk.servers, servers)
	tk.servers = servers
	tk.mu.Unlock()
	if !changed {
		return
	}
	select {
	case tk.wake <- struct{}{}:
	default:
	}
}

// stop ends the goroutine, waiting for it a little, then saves the time.
func (tk *timekeeper) stop() {
	tk.stopOnce.Do(func() {
		tk.cancel()
		select {
		case <-tk.done:
		case <-time.After(5 * time.Second):
			tk.log.Printf("warning: the clock's goroutine did not stop within 5s")
		}
		tk.save()
	})
}

// syncOnce asks the servers once and, as PID 1, corrects the clock by
// the answer, writes the RTC and saves the time. It returns when to ask
// next.
func (tk *timekeeper) syncOnce(ctx context.Context) time.Duration {
	tk.mu.Lock()
	servers := tk.servers
	tk.mu.Unlock()
	if len(servers) == 0 {
		tk.schedule(0)
		return maxPoll // until a reload names servers
	}
	s, err := tk.query(ctx, servers)
	if ctx.Err() != nil {
		return maxPoll // shutting down
	}
	if err != nil {
		return tk.failed(err)
	}
	tk.mu.Lock()
	first := !tk.synced
	tk.mu.Unlock()
	before := tk.clock.Now()
	off := offsetString(s.Offset)
	var adj board.Adjustment
	if tk.keep {
		if adj, err = board.Correct(tk.clock, s.Offset, first); err != nil {
			return tk.failed(err) // it names the step or slew and the offset
		}
	}
	tk.mu.Lock()
	failures := tk.failures
	tk.synced, tk.failures, tk.lastError = true, 0, ""
	tk.lastSync, tk.lastOffset, tk.lastAdjust = tk.clock.Now(), s.Offset, adj
	if tk.keep {
		tk.source = fmt.Sprintf("sntp %s stratum %d", s.Server, s.Stratum)
		tk.floor = time.Time{} // SNTP outranks the saved time
	}
	delay := tk.interval
	tk.interval = min(tk.interval*2, maxPoll)
	tk.mu.Unlock()
	switch {
	case adj == board.Stepped:
		tk.log.Printf("clock stepped by %v, %s -> %s (sntp %s stratum %d, delay %v)",
			off, stamp(before), stamp(tk.clock.Now()), s.Server, s.Stratum, s.Delay.Round(time.Microsecond))
	case !tk.keep && first:
		tk.log.Printf("clock: sntp %s stratum %d says this host's clock is off by %v (berth boot leaves it alone)", s.Server, s.Stratum, off)
	case failures > 0:
		tk.log.Printf("sntp %s answered after %d failed attempts: offset %v", s.Server, failures, off)
	default:
		tk.log.Debugf("clock: offset %v from sntp %s (%s)", off, s.Server, adj)
	}
	if tk.keep {
		tk.writeRTC()
		if adj == board.Stepped {
			tk.save()
		}
	}
	tk.schedule(delay)
	return delay
}

// failed records a failed sync and returns when to try again: from 1 s
// doubling to 32 s until the first answer, from 64 s doubling to 1024 s
// after it. Only the first failure of a run is logged; status shows the
// last one.
func (tk *timekeeper) failed(err error) time.Duration {
	tk.mu.Lock()
	tk.failures++
	tk.lastError = err.Error()
	base, limit := firstRetry, maxBootRetry
	if tk.synced {
		base, limit = minPoll, maxPoll
	}
	delay := limit
	if tk.failures <= 16 {
		delay = min(base<<(tk.failures-1), limit)
	}
	first := tk.failures == 1
	tk.mu.Unlock()
	if first {
		tk.log.Printf("clock: %v; retrying in %v", err, delay)
	} else {
		tk.log.Debugf("clock: %v; retrying in %v", err, delay)
	}
	tk.schedule(delay)
	return delay
}

// schedule records when the next sync is due (0: none).
func (tk *timekeeper) schedule(d time.Duration) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	tk.nextSync = time.Time{}
	if d > 0 {
		tk.nextSync = tk.clock.Now().Add(d)
	}
}

// writeRTC sets the RTC from the clock, when there is one.
func (tk *timekeeper) writeRTC() {
	if tk.rtc == nil {
		return
	}
	tk.rtcMu.Lock()
	defer tk.rtcMu.Unlock()
	if err := tk.rtc.Set(tk.clock.Now()); err != nil {
		tk.log.Printf("warning: %v", err)
	}
}

// readRTC reads the RTC.
func (tk *timekeeper) readRTC() (time.Time, error) {
	tk.rtcMu.Lock()
	defer tk.rtcMu.Unlock()
	return tk.rtc.Read()
}

// save writes the clock's time to the saved time (PID 1 only) — or the
// saved time found at boot, when the clock is behind it and SNTP has not
// answered yet.
func (tk *timekeeper) save() {
	if !tk.keep {
		return
	}
	tk.mu.Lock()
	t := tk.clock.Now()
	if t.Before(tk.floor) {
		t = tk.floor
	}
	tk.mu.Unlock()
	tk.saveMu.Lock()
	defer tk.saveMu.Unlock()
	if err := board.SaveTime(tk.saveDir, t); err != nil {
		tk.log.Printf("warning: %v", err)
	}
}

// info is the clock for berth status.
func (tk *timekeeper) info() *ClockInfo {
	tk.mu.Lock()
	ci := &ClockInfo{
		Time: tk.clock.Now(), Source: tk.source, Servers: tk.servers, LastError: tk.lastError,
		LastAdjust: string(tk.lastAdjust), RTC: tk.rtcName,
	}
	if tk.synced {
		last, off := tk.lastSync, tk.lastOffset.Seconds()
		ci.LastSync, ci.LastOffsetSec = &last, &off
	}
	if !tk.nextSync.IsZero() {
		next := tk.nextSync
		ci.NextSync = &next
	}
	tk.mu.Unlock()
	if tk.keep {
		ci.SavedTime = filepath.Join(tk.saveDir, board.SavedTimeFile)
	}
	if tk.rtc != nil {
		if t, err := tk.readRTC(); err != nil {
			ci.RTCError = err.Error()
		} else {
			ci.RTCTime = &t
		}
	}
	return ci
}
