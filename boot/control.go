package boot

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// request is a control request on its way to the supervisor loop, which
// answers on reply (and hands out a log ring for logs).
type request struct {
	Request
	reply chan reply
	// files are the fds that came with an exec request.
	files []*os.File
	// gone, for apply, reload, stop and restart, is closed once the
	// client hangs up.
	gone <-chan struct{}
}

type reply struct {
	Response
	ring *logRing
	// pty is an exec'd command's terminal; exited delivers its end.
	pty    *os.File
	exited chan syscall.WaitStatus
}

// serveControl listens on the control socket, mode 0600, and serves each
// connection on its own goroutine; requests that touch the containers go
// to the supervisor loop.
func (b *booter) serveControl(path string) error {
	if err := socketOrNothing(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	l, err := listenPrivate(path) // 0600 as it is made: no chmod after
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	b.control = l
	b.followers = make(chan struct{}, maxFollowers)
	b.longConns = make(chan struct{}, maxLongConns)
	b.goSafe(func() {
		conns := make(chan struct{}, maxControlConns)
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(100 * time.Millisecond)
				continue
			}
			select {
			case conns <- struct{}{}:
			default:
				// Each connection holds an fd for up to the read
				// deadline: without a bound, clients that hold many
				// open would leave none for starting containers.
				c.SetWriteDeadline(time.Now().Add(time.Second))
				json.NewEncoder(c).Encode(Response{Error: fmt.Sprintf("busy: %d control connections are open already, try again", maxControlConns)})
				c.Close()
				continue
			}
			go func() {
				defer func() { <-conns }()
				b.serveClient(c)
			}()
		}
	})
	return nil
}

// maxControlConns bounds the control connections served at once.
const maxControlConns = 128

// maxFollowers bounds the berth logs -f served at once, to half the
// connections: a follower of a quiet container is never written to, so
// no deadline ends it, and 128 of them kept every other client, berth
// poweroff included, out for as long as they stayed (review).
const maxFollowers = maxControlConns / 2

// maxLongConns bounds the requests served at once that may last as long
// as their clients or containers want (longVerb): the rest of the
// connections stay for the short ones, berth ps, status and poweroff
// among them, which 128 berth exec sessions or waiting stops kept out.
const maxLongConns = maxControlConns - 16

// longVerb reports whether verb is one whose answer may wait on a container (exec,
// stop, restart), an update (apply, reload) or a slow reader (logs).
func longVerb(verb string) bool {
	switch verb {
	case "exec", "stop", "restart", "logs", "apply", "reload":
		return true
	}
	return false
}

// controlReadTimeout is how long a client has to send its request.
var controlReadTimeout = 10 * time.Second

// serveClient serves one connection. A panic there is the client's
// request's, not the supervisor's, whose state a connection only reaches
// through its loop: it is logged and the connection dropped, and PID 1
// goes on.
func (b *booter) serveClient(c *net.UnixConn) {
	defer func() {
		if r := recover(); r != nil {
			c.Close()
			b.log.Printf("control socket: a request panicked (connection dropped): %v\n%s", r, debug.Stack())
		}
	}()
	b.serveConn(c)
}

// closeControl stops serving the control socket and removes its file.
func (b *booter) closeControl() {
	if b.control != nil {
		b.control.Close() // a listener made by ListenUnix unlinks its path
		b.control = nil
	}
}

// serveConn answers one client: root only, one request.
func (b *booter) serveConn(c *net.UnixConn) {
	defer c.Close()
	enc := json.NewEncoder(c)
	if uid, err := peerUID(c); err != nil || uid != 0 {
		answer(c, enc, Response{Error: "permission denied: the control socket is for root only"})
		return
	}
	c.SetReadDeadline(time.Now().Add(controlReadTimeout))
	lr := &limitedReader{fdReader: fdReader{c: c, max: maxRequestFds}, n: maxRequestBytes}
	line, err := bufio.NewReader(lr).ReadBytes('\n')
	fds := lr.files()
	if err != nil && len(line) == 0 {
		closeFiles(fds)
		return
	}
	if errors.Is(err, errRequestTooLong) {
		closeFiles(fds)
		answer(c, enc, Response{Error: fmt.Sprintf("bad request: %v: more than %d KiB without a newline", err, maxRequestBytes>>10)})
		return
	}
	c.SetReadDeadline(time.Time{})
	var req Request
	if err := json.Unmarshal(line, &req); err != nil || lr.dropped > 0 {
		closeFiles(fds)
		if err == nil {
			err = fmt.Errorf("more than %d fds", maxRequestFds)
		}
		answer(c, enc, Response{Error: "bad request: " + err.Error()})
		return
	}
	if longVerb(req.Verb) && b.longConns != nil { // nil: a test's booter, no socket served
		select {
		case b.longConns <- struct{}{}:
			defer func() { <-b.longConns }()
		default:
			closeFiles(fds)
			code := 125 // berth exec's own failure
			answer(c, enc, Response{Error: fmt.Sprintf("busy: %d requests that wait (exec, logs, stop, restart, apply, reload) are being served already, try again", maxLongConns), ExitCode: &code})
			return
		}
	}
	if req.Verb == "exec" {
		b.serveExec(c, req, fds)
		return
	}
	closeFiles(fds)
	r := request{Request: req, reply: make(chan reply, 1)}
	switch req.Verb {
	case "apply", "reload", "stop", "restart":
		// Cancels an update's phase 1; a stop's waiter is forgotten
		// (control_stop.go).
		r.gone = hangUp(c)
	}
	select {
	case b.requests <- r:
	case <-time.After(10 * time.Second):
		answer(c, enc, Response{Error: "berth's supervisor did not take the request within 10s"})
		return
	}
	var rep reply
	ok := false
	if req.Verb == "stop" || req.Verb == "restart" {
		// Answered once the container has stopped, up to its timeout:
		// the stop goes on without its client.
		select {
		case rep, ok = <-r.reply:
		case <-r.gone:
		}
	} else {
		rep, ok = forwardSteps(c, enc, r.reply)
	}
	if !ok {
		return // the client is gone, or a step was cut: the answer would not be read as one
	}
	switch {
	case req.Verb != "logs" || rep.ring == nil || rep.Error != "":
		answer(c, enc, rep.Response)
	case !req.Follow:
		sendLogs(c, enc, rep.ring, req.Lines)
	default:
		select {
		case b.followers <- struct{}{}:
			defer func() { <-b.followers }()
			followLogs(c, enc, rep.ring, req.Lines)
		default:
			answer(c, enc, Response{Error: fmt.Sprintf("busy: %d berth logs -f are following already, try again", maxFollowers)})
		}
	}
}

// answer writes r to the client, waiting at most clientWriteTimeout for
// it to read: a client that does not cannot hold a goroutine of PID 1.
func answer(c *net.UnixConn, enc *json.Encoder, r Response) error {
	c.SetWriteDeadline(time.Now().Add(clientWriteTimeout))
	defer c.SetWriteDeadline(time.Time{})
	return enc.Encode(r)
}

// maxLogAnswers bounds the batches of lines (berth logs, logs -f) being
// encoded and written at once, whatever the connections: each is held
// in PID 1's memory as JSON until its client has read it, up to
// clientWriteTimeout, and one line of invalid UTF-8 is near 0.5 MiB
// there (jsonCost). An answer waits for its turn as long, then its
// connection is dropped.
const maxLogAnswers = 8

var logAnswers = make(chan struct{}, maxLogAnswers)

// answerLines is answer for a batch of lines, in its turn.
func answerLines(c *net.UnixConn, enc *json.Encoder, r Response) error {
	select {
	case logAnswers <- struct{}{}:
	case <-time.After(clientWriteTimeout):
		return fmt.Errorf("busy: %d answers of lines are being written already", maxLogAnswers)
	}
	defer func() { <-logAnswers }()
	return answer(c, enc, r)
}

// logSpan is the span of the ring's last n lines a logs request asks
// for (Request.Lines): all when n is 0, none when it is negative.
func logSpan(ring *logRing, n int) (from, to uint64) {
	from, to = ring.span(n)
	if n < 0 {
		from = to
	}
	return from, to
}

// sendLogs writes the ring's last n lines (see logSpan) as they are
// when asked, a batch per answer, each but the last with More set; lines
// the ring drops while a slow client reads are skipped.
func sendLogs(c *net.UnixConn, enc *json.Encoder, ring *logRing, n int) {
	from, to := logSpan(ring, n)
	for {
		var lines []LogLine
		lines, from = ring.read(from, to)
		if answerLines(c, enc, Response{Lines: lines, More: from < to}) != nil || from >= to {
			return
		}
	}
}

// followLogs writes the ring's last n lines (see logSpan), then the lines that follow
// as they come, a batch per answer, until the client hangs up (hangUp)
// or leaves an answer unread for clientWriteTimeout. A client slower than the
// container misses the lines the ring drops before it gets to them.
func followLogs(c *net.UnixConn, enc *json.Encoder, ring *logRing, n int) {
	added, cancel := ring.watch()
	defer cancel()
	from, to := logSpan(ring, n)
	gone := hangUp(c) // a client that only shuts its writing side still reads
	for sent := false; ; {
		for !sent || from < to { // the first answer goes even with no lines
			var lines []LogLine
			lines, from = ring.read(from, to)
			if answerLines(c, enc, Response{Lines: lines}) != nil {
				return
			}
			sent = true
		}
		select {
		case <-added:
			_, to = ring.span(0)
		case <-gone:
			return
		}
	}
}

// hangUp is closed once the client at the other end of c hangs up (or
// sends more than its one request line): a client waits for its answer
// without writing. One that only shuts its writing side after its
// request (socat, nc -N) still reads the answer: it is gone once it
// closes its socket. The goroutine ends when c is closed.
func hangUp(c *net.UnixConn) <-chan struct{} {
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		if n, err := c.Read(make([]byte, 1)); n == 0 && errors.Is(err, io.EOF) {
			waitPeerClosed(c)
		}
	}()
	return gone
}

// untilHangUp returns what ch delivers, or ok false once the client at
// the other end of c hangs up first (hangUp): the connection, and its
// control slot, are then given back at once, not when the answer comes,
// and what was waited for goes on. ch must have room for its one value,
// which nobody then reads.
func untilHangUp[T any](c *net.UnixConn, ch <-chan T) (v T, ok bool) {
	gone := hangUp(c)
	select {
	case v = <-ch:
		return v, true
	case <-gone:
		return v, false
	}
}

// peerClosedPoll is how long one look of waitPeerClosed waits; c.Close
// waits at most as long for it.
const peerClosedPoll = 200 * time.Millisecond

// waitPeerClosed returns once the peer of c, which has shut its writing
// side, closes its socket — the kernel then shuts both directions of c,
// and poll(2) says POLLHUP — or once c is closed.
func waitPeerClosed(c *net.UnixConn) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	for {
		hup := false
		err := raw.Control(func(fd uintptr) {
			fds := []unix.PollFd{{Fd: int32(fd)}}
			n, perr := unix.Poll(fds, int(peerClosedPoll/time.Millisecond))
			hup = perr == nil && n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
		})
		if err != nil || hup {
			return
		}
	}
}

// peerUID returns the uid of the process at the other end of c.
func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return cred.Uid, nil
}

// limitedReader fails a request line longer than n bytes, and keeps the
// fds that come with it: at most maxRequestFds, the kernel discards the
// rest.
// maxRequestBytes bounds a request's line.
const maxRequestBytes = 64 << 10

// errRequestTooLong is a request's line past maxRequestBytes.
var errRequestTooLong = errors.New("request too long")

type limitedReader struct {
	fdReader
	n       int
	dropped int // fds closed beyond maxRequestFds
}

// forwardSteps writes an update's steps (Response.Progress) to the client
// and returns the answer that follows them, or the only one. Once the
// client has gone, or left a step unread for clientWriteTimeout, the
// steps are still taken from replies but dropped, so that the update never
// waits on a connection for long; ok is then false.
func forwardSteps(c *net.UnixConn, enc *json.Encoder, replies <-chan reply) (rep reply, ok bool) {
	ok = true
	for rep = <-replies; rep.Progress != ""; rep = <-replies {
		if ok {
			ok = answer(c, enc, rep.Response) == nil
		}
	}
	return rep, ok
}

// clientWriteTimeout bounds each write to a control client: an answer,
// an update step, a line of berth logs -f (a variable for the tests).
var clientWriteTimeout = 10 * time.Second

// maxRequestFds is how many fds a request may bring: exec's stdio.
const maxRequestFds = 3

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errRequestTooLong
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.fdReader.Read(p)
	l.n -= n
	for len(l.fds) > maxRequestFds {
		unix.Close(l.fds[len(l.fds)-1])
		l.fds = l.fds[:len(l.fds)-1]
		l.dropped++
	}
	return n, err
}

// files hands over the fds received.
func (l *limitedReader) files() []*os.File {
	var out []*os.File
	for _, fd := range l.take() {
		out = append(out, os.NewFile(uintptr(fd), "client fd"))
	}
	return out
}
