package appliance

import (
	"bytes"
	"io"

	"berth/internal/lazyre"
)

// maxConsoleLine bounds the part of a console line the watch keeps: the
// guest writes the console, and nothing the guest sends may grow the
// host's memory without bound.
const maxConsoleLine = 4096

// berthFatal is the line berth logs when it fails — a fatal error ends
// PID 1's boot in the berth.panic action — stamped as berth stamps its
// lines. A container's output cannot forge it: berth prefixes those
// lines with the container's name and " | ".
var berthFatal = lazyre.New(`^\[\s*[0-9]+\.[0-9]+\] berth: FATAL: `)

// kernelPanic is the kernel's panic line.
var kernelPanic = lazyre.New(`Kernel panic - not syncing`)

// kernelPowerDown is the kernel's last line before it powers the machine
// off.
var kernelPowerDown = lazyre.New(`^\[\s*[0-9]+\.[0-9]+\] reboot: Power down$`)

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
	switch {
	case c.fatal == "" && berthFatal().Match(line):
		c.fatal = string(line)
	case c.panic == "" && kernelPanic().Match(line):
		c.panic = string(line)
	case kernelPowerDown().Match(line):
		c.powerDown = true
	}
	c.line = c.line[:0]
}
