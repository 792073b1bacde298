package boot

import (
	"fmt"
	"sync"
	"time"

	wd "github.com/u-root/u-root/pkg/watchdog"
	"golang.org/x/sys/unix"
)

// watchdog is the armed hardware watchdog. Once the supervisor loop runs,
// only the loop pings it: a wedged loop stops the pings and the hardware
// resets the machine.
type watchdog struct {
	dev      string
	w        *wd.Watchdog
	timeout  time.Duration
	interval time.Duration // ping at least this often
	mu       sync.Mutex
	last     time.Time
}

// openWatchdog opens and arms dev with timeout.
func openWatchdog(dev string, timeout time.Duration) (*watchdog, error) {
	w, err := wd.Open(dev)
	if err != nil {
		return nil, fmt.Errorf("watchdog %s: %w", dev, err)
	}
	d := &watchdog{dev: dev, w: w}
	if err := d.setTimeout(timeout); err != nil {
		// The device keeps its own timeout; use what it reports.
		if t, terr := w.Timeout(); terr == nil && t > 0 {
			d.timeout = t
		} else {
			w.MagicClose()
			return nil, fmt.Errorf("watchdog %s: %w", dev, err)
		}
	}
	d.interval = d.timeout / 3
	d.ping()
	return d, nil
}

// setTimeout sets the timeout in whole seconds; the device may round it,
// and the value it reports back is kept.
func (d *watchdog) setTimeout(t time.Duration) error {
	secs := int(t / time.Second)
	if err := unix.IoctlSetPointerInt(int(d.w.File.Fd()), unix.WDIOC_SETTIMEOUT, secs); err != nil {
		return err
	}
	got, err := d.w.Timeout()
	if err == nil && got <= 0 {
		err = fmt.Errorf("the device reports a timeout of %v", got)
	}
	if err != nil {
		// The device took the timeout asked but does not say it back:
		// it is petted for that one. (openWatchdog does not use such a
		// device; a reload keeps it.)
		d.timeout = time.Duration(secs) * time.Second
		return err
	}
	d.timeout = got
	return nil
}

// ping pets the watchdog, at most once a second, or twice an interval
// when that is shorter (a timeout under 6 s): a tick a little early must
// not make it wait a whole interval more.
func (d *watchdog) ping() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if time.Since(d.last) < min(time.Second, d.interval/2) {
		return
	}
	d.last = time.Now()
	_ = d.w.KeepAlive()
}

// pingUntil pets the watchdog from its own goroutine until stop is closed:
// for the boot phases before the supervisor loop takes over.
func (d *watchdog) pingUntil(stop <-chan struct{}) {
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			d.ping()
		case <-stop:
			return
		}
	}
}

// close disarms the watchdog (the magic close): a clean shutdown.
func (d *watchdog) close() error { return d.w.MagicClose() }
