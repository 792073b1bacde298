package boot

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// request is a control request on its way to the supervisor loop, which
// answers on reply (and hands out a log ring for logs).
type request struct {
	Request
	reply chan reply
}

type reply struct {
	Response
	ring *logRing
}

// serveControl listens on the control socket, mode 0600, and serves each
// connection on its own goroutine; requests that touch the containers go
// to the supervisor loop.
func (b *booter) serveControl(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	old := unix.Umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	b.control = l
	b.goSafe(func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(100 * time.Millisecond)
				continue
			}
			b.goSafe(func() { b.serveConn(c) })
		}
	})
	return nil
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
		enc.Encode(Response{Error: "permission denied: the control socket is for root only"})
		return
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(&limitedReader{c, 64 << 10}).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	c.SetReadDeadline(time.Time{})
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		enc.Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	r := request{Request: req, reply: make(chan reply, 1)}
	select {
	case b.requests <- r:
	case <-time.After(10 * time.Second):
		enc.Encode(Response{Error: "berth's supervisor did not take the request within 10s"})
		return
	}
	rep := <-r.reply
	if req.Verb != "logs" || rep.ring == nil || rep.Error != "" {
		enc.Encode(rep.Response)
		return
	}
	if !req.Follow {
		enc.Encode(Response{Lines: rep.ring.tail(req.Lines)})
		return
	}
	backlog, ch, cancel := rep.ring.follow(req.Lines)
	defer cancel()
	if enc.Encode(Response{Lines: backlog}) != nil {
		return
	}
	gone := make(chan struct{})
	go func() { c.Read(make([]byte, 1)); close(gone) }() // the client hanging up
	for {
		select {
		case l := <-ch:
			if enc.Encode(Response{Lines: []LogLine{l}}) != nil {
				return
			}
		case <-gone:
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

// limitedReader fails a request line longer than n bytes.
type limitedReader struct {
	c *net.UnixConn
	n int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request too long")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.c.Read(p)
	l.n -= n
	return n, err
}
