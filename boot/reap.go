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
	// spawning counts the starts under way. While there is one, an exit
	// nobody owns yet may be that of the child it is starting: early
	// keeps it (at most maxEarly) for start to find.
	spawning int
	early    map[int]syscall.WaitStatus
	// orphans counts exits nobody owned (reparented processes).
	orphans int
}

// maxEarly bounds the exits kept while a start is under way.
const maxEarly = 1024

func newReaper() *reaper {
	return &reaper{owners: map[int]func(syscall.WaitStatus){}}
}

// start runs spawn, which starts a process and returns its pid, and
// registers onExit for that pid. spawn runs without the reaper's lock:
// an exec's start may take seconds (a container can stop its child
// before the exec), and the supervisor loop, which reaps, must not wait
// for it. A child that exits before spawn returns is reaped into early,
// and start hands its status to onExit itself.
func (r *reaper) start(spawn func() (int, error), onExit func(syscall.WaitStatus)) error {
	r.mu.Lock()
	r.spawning++
	r.mu.Unlock()
	pid, err := spawn()
	r.mu.Lock()
	r.spawning--
	ws, gone := r.early[pid]
	gone = gone && err == nil
	if gone {
		delete(r.early, pid)
	} else if err == nil {
		r.owners[pid] = onExit
	}
	if r.spawning == 0 {
		r.orphans += len(r.early)
		r.early = nil
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if gone {
		onExit(ws)
	}
	return nil
}

// startCloned is start for a spawn that reports its child as soon as it
// exists (cloned), long before spawn returns. An exec's start may be held
// for seconds by the container (a process of it stopping the child), and
// meanwhile other children of berth's may exit by the thousand (an
// exec'd process's CLONE_PARENT children did, before the clone guard
// refused them: container/seccomp.CloneGuard): early, bounded, would
// drop the exec's own status, and its pid, reused, would later hand its
// owner another process's. The child is
// owned from its clone on; a status it has before spawn returns is kept
// for it, and dropped if the start failed.
func (r *reaper) startCloned(spawn func(cloned func(pid int)) (int, error), onExit func(syscall.WaitStatus)) error {
	r.mu.Lock()
	r.spawning++
	r.mu.Unlock()
	got := make(chan syscall.WaitStatus, 1)
	child, counted := 0, true
	pid, err := spawn(func(pid int) {
		r.mu.Lock()
		defer r.mu.Unlock()
		child = pid
		if ws, ok := r.early[pid]; ok {
			delete(r.early, pid)
			got <- ws
		} else {
			r.owners[pid] = func(ws syscall.WaitStatus) { got <- ws }
		}
		r.spawning--
		counted = false
		r.settleEarly()
	})
	r.mu.Lock()
	if counted { // never cloned: as start does
		r.spawning--
		ws, gone := r.early[pid]
		if gone && err == nil {
			delete(r.early, pid)
			got <- ws
		} else if err == nil {
			r.owners[pid] = func(ws syscall.WaitStatus) { got <- ws }
		}
		child = pid
		r.settleEarly()
	}
	_, alive := r.owners[child]
	switch {
	case err != nil && alive:
		delete(r.owners, child) // its end, when it comes, nobody's
	case err == nil && alive:
		r.owners[child] = onExit
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if !alive {
		onExit(<-got) // reaped: reap hands it over, if it has not yet
	}
	return nil
}

// settleEarly drops what early holds once no start is under way, counting
// it as orphans. r.mu is held.
func (r *reaper) settleEarly() {
	if r.spawning == 0 {
		r.orphans += len(r.early)
		r.early = nil
	}
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
		switch {
		case owner != nil:
		case r.spawning > 0 && len(r.early) < maxEarly:
			if r.early == nil {
				r.early = map[int]syscall.WaitStatus{}
			}
			r.early[pid] = syscall.WaitStatus(ws)
		default:
			r.orphans++
		}
		r.mu.Unlock()
		if owner != nil {
			owner(syscall.WaitStatus(ws))
		}
	}
}
