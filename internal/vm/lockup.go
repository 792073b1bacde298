package vm

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// LockupMinimum is how long the guest's kernel must report a CPU stuck
// before a boot is ended as locked up. Under TCG a guest whose host
// thread was not scheduled for a while can report a short soft lockup
// and go on; a minute is not that.
const LockupMinimum = 60

// softLockup is the kernel's watchdog line (kernel/watchdog.c): the
// CPU, for how long, and the task on it as comm:pid.
var softLockup = regexp.MustCompile(`soft lockup - CPU#(\d+) stuck for (\d+)s! \[([^\]]*)\]`)

// LockupError is a boot ended because the guest's kernel reported a CPU
// stuck in the kernel for LockupMinimum seconds or more: the guest would
// not have gone on.
type LockupError struct {
	// Line is the kernel's report, as the console showed it.
	Line string
	// CPU, Seconds and Task (comm:pid) are read from it.
	CPU, Seconds int
	Task         string
}

func (e *LockupError) Error() string {
	return fmt.Sprintf("the guest's kernel locked up: CPU#%d stuck for %ds in task %s; QEMU killed", e.CPU, e.Seconds, e.Task)
}

// findLockup is the first soft lockup report in console of at least
// LockupMinimum seconds, or nil.
func findLockup(console string) *LockupError {
	if !strings.Contains(console, "soft lockup") {
		return nil
	}
	for _, line := range strings.Split(console, "\n") {
		m := softLockup.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		cpu, err1 := strconv.Atoi(m[1])
		secs, err2 := strconv.Atoi(m[2])
		if err1 != nil || err2 != nil || secs < LockupMinimum {
			continue
		}
		return &LockupError{Line: strings.TrimSpace(line), CPU: cpu, Seconds: secs, Task: m[3]}
	}
	return nil
}
