package boot

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// parseCmdline splits a kernel command line as the kernel does
// (lib/cmdline.c): at blanks outside double quotes, each argument NAME
// or NAME=VALUE, its double quotes removed. A NAME without a value maps
// to "". '-' and '_' in a NAME are the same to the kernel: NAMEs are kept
// with '_'.
func parseCmdline(s string) map[string]string {
	args := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t\n")
		if s == "" {
			return args
		}
		end, quoted := 0, false
		for ; end < len(s) && (quoted || !strings.ContainsRune(" \t\n", rune(s[end]))); end++ {
			if s[end] == '"' {
				quoted = !quoted
			}
		}
		name, value, _ := strings.Cut(strings.ReplaceAll(s[:end], `"`, ""), "=")
		args[strings.ReplaceAll(name, "-", "_")] = value
		s = s[end:]
	}
}

// maxPanicDelay bounds berth.panic's SECONDS: a day. A larger number is
// refused, not taken as a day (nor overflowed into a Duration that waits
// no time at all): a typo must show, on the console, before it matters.
const maxPanicDelay = 24 * 60 * 60

// readCmdline reads /proc/cmdline and applies berth's flags:
//
//	berth.config=PATH             the config (default /etc/berth.toml)
//	berth.debug                   debug messages, and the debug control verbs
//	berth.panic=reboot|poweroff|halt[:SECONDS]
//	                              what a fatal error ends in; reboot waits
//	                              10 s unless SECONDS (0-86400) says
//	                              otherwise
func (b *booter) readCmdline() {
	data, _ := os.ReadFile("/proc/cmdline")
	b.applyCmdline(string(data))
}

// applyCmdline applies the kernel command line data (readCmdline).
func (b *booter) applyCmdline(data string) {
	b.cmdline = parseCmdline(data)
	_, b.debug = b.cmdline["berth.debug"]
	b.log.debug = b.debug
	p := b.cmdline["berth.panic"]
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
		b.applyPanicDelay(p, secs)
	}
}

// applyPanicDelay sets the delay of berth.panic=p from its SECONDS,
// secs: 0 to maxPanicDelay. Any other — past a day, negative, past an
// int, not a number — is refused with a warning naming it, and the
// action's default delay stays (10 s for reboot, none for poweroff and
// halt).
func (b *booter) applyPanicDelay(p, secs string) {
	n, err := strconv.Atoi(secs)
	if err == nil && n >= 0 && n <= maxPanicDelay {
		b.panicDelay = time.Duration(n) * time.Second
		return
	}
	then := "at once"
	if b.panicDelay > 0 {
		then = "after " + b.panicDelay.String()
	}
	b.log.Printf("warning: berth.panic=%s: %q is not 0 to %d seconds; %s %s", p, secs, maxPanicDelay, b.panicAction, then)
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
