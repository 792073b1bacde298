package container

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Handles reports whether the container's first process has a handler
// installed for sig. The first process is its PID namespace's init, and
// the kernel drops every signal but SIGKILL and SIGSTOP sent to such an
// init from outside when it has no handler for it: a stop signal sent
// before the workload installs its handler (a shell script before its
// trap) is lost, not kept pending. SIGKILL and SIGSTOP are always
// handled. The answer is read from /proc/PID/status (SigCgt), opened
// while the container's pidfd shows the process is still there, so a
// reused pid is never read; ErrNotRunning once it is gone.
func (c *Container) Handles(sig syscall.Signal) (bool, error) {
	if sig == syscall.SIGKILL || sig == syscall.SIGSTOP {
		return true, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pidfd == nil {
		return false, fmt.Errorf("container %s: %w", c.Spec.Name, ErrNotRunning)
	}
	p, fd, err := openProcOf(c.Pid, c.pidfd, "status", unix.O_RDONLY)
	if err != nil {
		return false, fmt.Errorf("container %s: %w", c.Spec.Name, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	line, err := statusLine(bufio.NewReaderSize(f, 512), "SigCgt:")
	if err != nil {
		return false, fmt.Errorf("container %s: %s: %w", c.Spec.Name, p, err)
	}
	return caught(line, sig)
}

// statusLine returns the value of the /proc/PID/status line that starts
// with key. Lines longer than r's buffer (a Groups line of thousands of
// groups, which the workload chooses) are skipped, not held.
func statusLine(r *bufio.Reader, key string) (string, error) {
	atStart := true
	for {
		b, err := r.ReadSlice('\n')
		if atStart && err != bufio.ErrBufferFull {
			if v, ok := strings.CutPrefix(string(b), key); ok {
				return strings.TrimSpace(v), nil
			}
		}
		switch err {
		case nil:
			atStart = true
		case bufio.ErrBufferFull:
			atStart = false
		case io.EOF:
			return "", fmt.Errorf("no %s line", strings.TrimSuffix(key, ":"))
		default:
			return "", err
		}
	}
}

// caught reports whether sig's bit is set in a SigCgt mask (hex).
func caught(mask string, sig syscall.Signal) (bool, error) {
	if sig < 1 || sig > 64 {
		return false, fmt.Errorf("signal %d: want 1 to 64", int(sig))
	}
	m, err := strconv.ParseUint(mask, 16, 64)
	if err != nil {
		return false, fmt.Errorf("SigCgt %q: %w", mask, err)
	}
	return m&(1<<(uint(sig)-1)) != 0, nil
}
