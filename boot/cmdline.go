package boot

import (
	"strconv"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/cmdline"
)

// cmdlineFlag returns the value of a kernel command line flag, or "". It
// reads /proc/cmdline afresh: u-root's package-level helpers keep the
// first read, which may come before /proc is mounted.
func cmdlineFlag(name string) string {
	v, _ := cmdline.NewCmdLine().Flag(name)
	return v
}

// readCmdline applies berth's kernel command line flags:
//
//	berth.config=PATH             the config (default /etc/berth.toml)
//	berth.debug                   debug messages, and the debug control verbs
//	berth.panic=reboot|poweroff|halt[:SECONDS]
//	                              what a fatal error ends in; reboot waits
//	                              10 s unless SECONDS says otherwise
func (b *booter) readCmdline() {
	b.debug = cmdline.NewCmdLine().ContainsFlag("berth.debug")
	b.log.debug = b.debug
	p := cmdlineFlag("berth.panic")
	if p == "" {
		return
	}
	what, secs, hasSecs := strings.Cut(p, ":")
	switch what {
	case "reboot":
		b.panicAction = Reboot
	case "poweroff":
		b.panicAction, b.panicDelay = PowerOff, 0
	case "halt":
		b.panicAction, b.panicDelay = Halt, 0
	default:
		b.log.Printf("warning: berth.panic=%s: want reboot, poweroff or halt; using reboot", p)
	}
	if hasSecs {
		if n, err := strconv.Atoi(secs); err == nil && n >= 0 {
			b.panicDelay = time.Duration(n) * time.Second
		}
	}
}

// fatalDelay waits before the panic action so that a person at the
// console can read why, keeping the watchdog fed meanwhile.
func (b *booter) fatalDelay() {
	if b.panicDelay <= 0 {
		return
	}
	b.log.Printf("%s in %s (berth.panic)", b.panicAction, b.panicDelay)
	stop := make(chan struct{})
	if b.watchdog != nil {
		go b.watchdog.pingUntil(stop)
	}
	time.Sleep(b.panicDelay)
	close(stop)
}
