package appliance

import (
	"bytes"
	"io"
)

// maxConsoleLine bounds the part of a console line the watch keeps: the
// guest writes the console, and nothing the guest sends may grow the
// host's memory without bound.
const maxConsoleLine = 4096

// berthFatal starts the line berth logs when it fails — a fatal error
// ends PID 1's boot in the berth.panic action — after the time stamp
// berth stamps its lines with (see stamped). A container's output cannot
// forge it: berth prefixes those lines with the container's name and
// " | ".
const berthFatal = " berth: FATAL: "

// kernelPanic is in the kernel's panic line.
const kernelPanic = "Kernel panic - not syncing"

// kernelPowerDown is the kernel's last line before it powers the machine
// off, after its time stamp.
const kernelPowerDown = " reboot: Power down"

// stamped returns what follows the kernel's time stamp a line starts
// with, "[" spaces "SECONDS.FRACTION]" (as the kernel's printk and berth
// stamp console lines); ok is false without one.
func stamped(line []byte) (rest []byte, ok bool) {
	rest, ok = bytes.CutPrefix(line, []byte("["))
	if !ok {
		return nil, false
	}
	rest = bytes.TrimLeft(rest, " \t\n\f\r")
	for _, end := range []byte{'.', ']'} {
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 || n == len(rest) || rest[n] != end {
			return nil, false
		}
		rest = rest[n+1:]
	}
	return rest, true
}

// consoleWatch passes the guest's console through to w and keeps the
// first line that shows berth failing and the first kernel panic line,
// and sees the kernel power the machine off: QEMU says how the guest
// ended, the console says whether berth chose to end it. Its findings
// are read once QEMU and the copy have ended.
type consoleWatch struct {
	w            io.Writer
	line         []byte // the current line, up to maxConsoleLine bytes
	fatal, panic string
	powerDown    bool
}

// Write passes p on, then looks at the lines it completes. It never
// fails: should w fail, the guest still runs, and its console is still
// watched.
func (c *consoleWatch) Write(p []byte) (int, error) {
	_, _ = c.w.Write(p)
	for rest := p; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		chunk := rest
		if i >= 0 {
			chunk = rest[:i]
		}
		if room := maxConsoleLine - len(c.line); room > 0 {
			c.line = append(c.line, chunk[:min(room, len(chunk))]...)
		}
		if i < 0 {
			break
		}
		c.endLine()
		rest = rest[i+1:]
	}
	return len(p), nil
}

// endLine looks at a whole line and starts the next.
func (c *consoleWatch) endLine() {
	line := bytes.TrimRight(c.line, "\r")
	rest, isStamped := stamped(line)
	switch {
	case c.fatal == "" && isStamped && bytes.HasPrefix(rest, []byte(berthFatal)):
		c.fatal = string(line)
	case c.panic == "" && bytes.Contains(line, []byte(kernelPanic)):
		c.panic = string(line)
	case isStamped && string(rest) == kernelPowerDown:
		c.powerDown = true
	}
	c.line = c.line[:0]
}
