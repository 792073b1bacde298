package boot

import (
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DrainQuiet and DrainMax are how berth reads an output once the
// process that owned it has exited: what a process left behind (or any
// process that holds the pipe) writes is read until it has been quiet
// for DrainQuiet, and for DrainMax at most. berth exec's relay
// (cli/exec_relay.go) and a container's output (below) both follow it.
const (
	DrainQuiet = 100 * time.Millisecond
	DrainMax   = 2 * time.Second
)

// A container's output pipe is read to its end while the container
// runs. Once its first process has exited, that end may never come: a
// process of another container can have been handed the pipe's write
// end (SCM_RIGHTS over a socket on a shared mount, or an abstract one
// between two net = "host" containers) and write on for ever, into the
// ended container's log and at the cost of PID 1's CPU. So from the
// exit berth reads what the pipe holds then (all the container wrote:
// the init's exit is reaped once its PID namespace is empty), then
// more only by the drain rule (DrainQuiet, DrainMax) and
// outputDrainBytes at most, at the output rate throughout; then it
// closes the pipe, and a writer left gets EPIPE.
const outputDrainBytes = 64 << 10

// drainingPipe is the read end of a container's output as copyOutput
// reads it.
type drainingPipe struct {
	f *os.File

	mu      sync.Mutex
	exited  bool
	end     time.Time // the exit's DrainMax
	backlog int64     // what the pipe held at the exit
	read    int64     // bytes read since the exit
}

// ended is the reaper's word that the container's first process has
// ended, at now: the pipe's backlog is noted, and a read waiting for
// more is woken at DrainQuiet. A pipe already closed (every writer
// gone, all read) is left alone.
func (p *drainingPipe) ended(now time.Time) {
	backlog := 0 // TIOCINQ is FIONREAD, which x/sys names so only
	if rc, err := p.f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { backlog, _ = unix.IoctlGetInt(int(fd), unix.TIOCINQ) })
	}
	p.mu.Lock()
	p.exited, p.end, p.backlog = true, now.Add(DrainMax), int64(backlog)
	p.mu.Unlock()
	_ = p.f.SetReadDeadline(now.Add(DrainQuiet))
}

// Read reads the pipe, and once the first process has exited, only as
// the drain allows: io.EOF when it is over, os.ErrDeadlineExceeded when
// the pipe was quiet for DrainQuiet.
func (p *drainingPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	exited, end, backlog, read := p.exited, p.end, p.backlog, p.read
	p.mu.Unlock()
	if exited {
		now := time.Now()
		left := backlog + outputDrainBytes - read
		inBacklog := read < backlog
		if left <= 0 || !inBacklog && !now.Before(end) {
			return 0, io.EOF
		}
		deadline := now.Add(DrainQuiet)
		if !inBacklog {
			deadline = minTime(deadline, end)
		}
		_ = p.f.SetReadDeadline(deadline)
		b = b[:min(int64(len(b)), left)]
	}
	n, err := p.f.Read(b)
	p.mu.Lock()
	if p.exited { // a read the exit woke counts too
		p.read += int64(n)
	}
	p.mu.Unlock()
	return n, err
}
