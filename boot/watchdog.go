package boot

import (
	"fmt"
	"os"
	"path/filepath"
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

// openWatchdog opens and arms dev with timeout. dev must be a watchdog:
// berth writes to it (a ping, the magic close), and a path mistyped for
// a disk or another device would have those bytes written over its
// start.
func openWatchdog(dev string, timeout time.Duration) (*watchdog, error) {
	rdev, err := watchdogDevice(dev)
	if err != nil {
		return nil, fmt.Errorf("watchdog %s: %w", dev, err)
	}
	w, err := wd.Open(dev)
	if err != nil {
		return nil, fmt.Errorf("watchdog %s: %w", dev, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(w.File.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || uint64(st.Rdev) != rdev {
		w.File.Close()
		return nil, fmt.Errorf("watchdog %s: replaced while it was opened", dev)
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

// watchdogDevice returns the device number of dev when it is a
// watchdog: the misc device /dev/watchdog (10:130) or one of
// /sys/class/watchdog. It looks at the node without opening it (an open
// arms a watchdog; a terminal's open may have effects of its own).
func watchdogDevice(dev string) (uint64, error) {
	fd, err := unix.Open(dev, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return 0, fmt.Errorf("not a watchdog: not a character device")
	}
	rdev := uint64(st.Rdev)
	major, minor := unix.Major(rdev), unix.Minor(rdev)
	if major == 10 && minor == 130 {
		return rdev, nil
	}
	class, err := os.Readlink(fmt.Sprintf("%s/%d:%d/subsystem", sysDevChar, major, minor))
	if err != nil || filepath.Base(class) != "watchdog" {
		return 0, fmt.Errorf("not a watchdog: character device %d:%d is not in /sys/class/watchdog", major, minor)
	}
	return rdev, nil
}

// sysDevChar is where the kernel names character devices by number
// (tests replace it).
var sysDevChar = "/sys/dev/char"
