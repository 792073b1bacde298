package boot

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"berth/container"
)

// The real-time signals, numbered as a program means them: the kernel's
// first two (32 and 33) are kept by the C library for its threads, so
// glibc's SIGRTMIN is 34, and an image's "SIGRTMIN+3" (systemd's halt
// signal) is 37, as docker maps it (moby's signal.ParseSignal).
const (
	sigRTMin = 34
	sigRTMax = 64
)

// errUnknownSignal is parseSignal's error for a name it does not know.
var errUnknownSignal = errors.New("unknown signal")

// parseSignal takes a signal's name: "SIGTERM", "TERM" or "term", or a
// real-time signal's, "SIGRTMIN", "SIGRTMIN+N", "SIGRTMAX-N", "SIGRTMAX"
// (each also without "SIG"), within SIGRTMIN to SIGRTMAX. A name it does
// not know is errUnknownSignal, wrapped.
func parseSignal(name string) (syscall.Signal, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "SIG")
	if sig := unix.SignalNum("SIG" + n); sig != 0 {
		return sig, nil
	}
	num, ok := rtSignal(n)
	switch {
	case !ok:
		return 0, fmt.Errorf("%w %s", errUnknownSignal, container.Quote(name))
	case num > sigRTMax:
		return 0, fmt.Errorf("%s is past SIGRTMAX: real-time signals go from SIGRTMIN (%d) to SIGRTMAX (%d)", container.Quote(name), sigRTMin, sigRTMax)
	case num < sigRTMin:
		return 0, fmt.Errorf("%s is below SIGRTMIN: real-time signals go from SIGRTMIN (%d) to SIGRTMAX (%d)", container.Quote(name), sigRTMin, sigRTMax)
	}
	return syscall.Signal(num), nil
}

// rtSignal is the number a real-time signal's name without "SIG" means,
// "RTMIN+N" or "RTMAX-N" (either sign), whether or not it is one.
func rtSignal(n string) (int, bool) {
	base := 0
	switch {
	case strings.HasPrefix(n, "RTMIN"):
		base = sigRTMin
	case strings.HasPrefix(n, "RTMAX"):
		base = sigRTMax
	default:
		return 0, false
	}
	rest := n[len("RTMIN"):]
	if rest == "" {
		return base, true
	}
	digits := rest[1:]
	if rest[0] != '+' && rest[0] != '-' || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false
	}
	k, err := strconv.Atoi(digits)
	if err != nil || k > 1000 {
		k = 1000 // out of range whatever its sign: no need of its value
	}
	if rest[0] == '-' {
		k = -k
	}
	return base + k, true
}

// signalName is a signal's name for a message: "SIGTERM", "SIGRTMIN+3".
func signalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	switch {
	case s == sigRTMin:
		return "SIGRTMIN"
	case s == sigRTMax:
		return "SIGRTMAX"
	case s > sigRTMin && s < sigRTMax:
		return "SIGRTMIN+" + strconv.Itoa(int(s)-sigRTMin)
	}
	return fmt.Sprintf("signal %d", int(s))
}
