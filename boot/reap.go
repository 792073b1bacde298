package boot

import (
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// reaper is berth's only caller of wait: it collects the exit status of
// every child, orphans reparented to PID 1 included, and hands each status
// to the owner registered for that pid. Nobody else waits, so no status is
// lost and none is collected twice.
type reaper struct {
	mu     sync.Mutex
	owners map[int]func(syscall.WaitStatus)
	// orphans counts exits nobody owned (reparented processes).
	orphans int
}

func newReaper() *reaper {
	return &reaper{owners: map[int]func(syscall.WaitStatus){}}
}

// start runs spawn, which starts a process and returns its pid, with the
// reaper locked, and registers onExit for that pid. A child that exits at
// once is therefore never reaped before its owner is known.
func (r *reaper) start(spawn func() (int, error), onExit func(syscall.WaitStatus)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := spawn()
	if err != nil {
		return err
	}
	r.owners[pid] = onExit
	return nil
}

// reap collects every exited child without blocking. It is called on each
// SIGCHLD; signals coalesce, so it loops until no exited child is left. It
// reports whether any child, running or not, remains: every user process
// descends from PID 1, so none left means the machine runs nothing but
// kernel threads.
func (r *reaper) reap() (children bool) {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ECHILD {
			return false
		}
		if pid <= 0 || err != nil {
			return true
		}
		r.mu.Lock()
		owner := r.owners[pid]
		delete(r.owners, pid)
		if owner == nil {
			r.orphans++
		}
		r.mu.Unlock()
		if owner != nil {
			owner(syscall.WaitStatus(ws))
		}
	}
}
