package boot

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Logger writes berth's log lines, each stamped with the time since boot
// (CLOCK_BOOTTIME, the clock of /proc/uptime and of the kernel's own
// console stamps), so berth's lines sort in with the kernel's.
type Logger struct {
	mu sync.Mutex
	w  io.Writer
}

// NewLogger logs to w.
func NewLogger(w io.Writer) *Logger { return &Logger{w: w} }

// Uptime returns the seconds since boot.
func Uptime() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

// Printf logs one berth message.
func (l *Logger) Printf(format string, args ...any) {
	l.line("berth: " + fmt.Sprintf(format, args...))
}

// Output logs one line a container wrote, prefixed with its name.
func (l *Logger) Output(name, line string) {
	l.line(name + " | " + line)
}

func (l *Logger) line(s string) {
	s = strings.TrimRight(s, "\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "[%12.6f] %s\n", Uptime(), s)
}
