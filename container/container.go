package container

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Container is a started container.
type Container struct {
	Spec    Spec
	Pid     int
	Started time.Time
	// PTY is the master side of the workload's terminal when Spec.TTY;
	// the caller closes it.
	PTY *os.File
	// Warnings are what the start found wrong but went on with (a
	// seccomp profile's unknown system calls): the caller reports them,
	// once per start.
	Warnings []string
	cgroup   *cgroup
	// killed is set once berth sends the container SIGKILL.
	killed atomic.Bool
	// cfg is what the first process was started with; an exec starts
	// with the same (exec.go).
	cfg initConfig
	// pidfd names the first process until its exit has been collected
	// (mu guards it against an exec that is under way).
	mu    sync.Mutex
	pidfd *os.File
	// landlock is the Landlock ruleset the first process was confined
	// to, made at the start, which every exec is confined to as well:
	// nil without one (mu guards it as it does pidfd).
	landlock *os.File
}

// Signal sends sig to the container's first process.
func (c *Container) Signal(sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		c.killed.Store(true)
	}
	return syscall.Kill(c.Pid, sig)
}

// Wait waits for the workload to exit, removes the cgroup and reports how
// it ended. Only for callers without a global reaper.
func (c *Container) Wait() (Exit, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(c.Pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return Exit{}, fmt.Errorf("wait for container %s: %w", c.Spec.Name, err)
		}
		break
	}
	trace("exited")
	e, err := c.Exited(syscall.WaitStatus(ws))
	trace("cgroup-removed")
	traceRSS("parent")
	return e, err
}

// Exited interprets the wait status of the workload, kills what is left of
// the container, removes its cgroup and returns the exit. The global
// reaper calls it with the status it collected.
func (c *Container) Exited(ws syscall.WaitStatus) (Exit, error) {
	e := Exit{Name: c.Spec.Name, Code: ws.ExitStatus(), MemoryLimit: c.Spec.Limits.Memory, Runtime: time.Since(c.Started)}
	if ws.Signaled() {
		e.Signal = ws.Signal()
		e.Code = -1
	}
	c.mu.Lock()
	if c.pidfd != nil {
		c.pidfd.Close()
		c.pidfd = nil
	}
	if c.landlock != nil {
		c.landlock.Close()
		c.landlock = nil
	}
	c.mu.Unlock()
	e.OOMKills = c.cgroup.oomKills()
	e.Stopped = e.Signal == syscall.SIGKILL && c.killed.Load()
	return e, c.cgroup.destroy()
}

// Kill sends SIGKILL to every process in the container's cgroup.
func (c *Container) Kill() {
	c.killed.Store(true)
	// The first process first, through its pidfd: the rest of its PID
	// namespace dies with it, processes forked after cgroup.procs is
	// read below included.
	c.mu.Lock()
	if c.pidfd != nil {
		_ = unix.PidfdSendSignal(int(c.pidfd.Fd()), unix.SIGKILL, nil, 0)
	}
	c.mu.Unlock()
	for _, dir := range c.cgroup.dirs {
		killCgroupProcs(dir)
	}
}
