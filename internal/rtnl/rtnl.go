// Package rtnl speaks the part of rtnetlink berth needs — links, bridges,
// veth pairs, addresses and routes — on golang.org/x/sys/unix alone, in a
// few hundred lines where a netlink library costs 400 KB of binary.
// Requests are built with the functions of request.go and sent in one
// batch (Conn.Do), one sendmsg for any number of them. Reading the state
// back is left to the standard library (net.Interfaces) and /proc, but
// for the one count neither has: how often a link lost its carrier
// (Conn.CarrierDowns).
package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"berth/internal/safe"
)

// Conn is a NETLINK_ROUTE socket in one network namespace.
type Conn struct {
	fd  int
	seq uint32
}

// Dial opens a socket in the caller's network namespace.
func Dial() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("rtnetlink socket: %w", err)
	}
	// Extended acks name the attribute a request was refused for.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rtnetlink bind: %w", err)
	}
	return &Conn{fd: fd}, nil
}

// DialNS opens a socket in the network namespace of nsfd (an open
// /proc/PID/ns/net): a socket stays in the namespace it was made in, so
// it is made on a locked OS thread that enters the namespace and leaves
// it again. A thread that cannot return is not unlocked, and Go ends it
// with its goroutine rather than reuse it. A panic there is returned as
// an error.
func DialNS(nsfd int) (*Conn, error) {
	type result struct {
		c   *Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var r result
		r.err = safe.Call("rtnetlink socket in another network namespace", func() (err error) {
			r.c, err = dialFromNS(nsfd)
			return err
		})
		ch <- r
	}()
	r := <-ch
	return r.c, r.err
}

// dialNSHook, when set (tests), runs in dialFromNS once the thread has
// entered the namespace.
var dialNSHook func()

// dialFromNS is DialNS on its own goroutine: it locks the thread, which
// it unlocks only back in its own network namespace, even after a panic
// (so that the main thread, which cannot end, is not left in another
// namespace either).
func dialFromNS(nsfd int) (*Conn, error) {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter network namespace: %w", err)
	}
	defer func() {
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	if dialNSHook != nil {
		dialNSHook()
	}
	return Dial()
}

// Close closes the socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

// Error is a request the kernel refused.
type Error struct {
	Op    string        // what the request was, e.g. "add link berth0"
	Errno syscall.Errno // the kernel's answer
	Msg   string        // the extended ack's message, if any
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return fmt.Sprintf("%s: %v (%s)", e.Op, e.Errno, e.Msg)
	}
	return fmt.Sprintf("%s: %v", e.Op, e.Errno)
}

func (e *Error) Unwrap() error { return e.Errno }

// Do sends every request in one sendmsg and waits for each one's ack. It
// returns the first refusal; the kernel still carries out the others.
func (c *Conn) Do(reqs ...*Request) error {
	if len(reqs) == 0 {
		return nil
	}
	var buf []byte
	first := c.seq + 1
	for _, r := range reqs {
		c.seq++
		binary.NativeEndian.PutUint32(r.b[0:], uint32(len(r.b)))
		binary.NativeEndian.PutUint32(r.b[8:], c.seq)
		buf = append(buf, r.b...)
	}
	if err := c.send(buf); err != nil {
		return err
	}
	return c.acks(reqs, first)
}

// acks reads the answers to the requests numbered from first.
func (c *Conn) acks(reqs []*Request, first uint32) error {
	var firstErr error
	pending := len(reqs)
	rb := make([]byte, 16<<10)
	for pending > 0 {
		n, err := c.recv(rb)
		if err != nil {
			return err
		}
		err = eachMessage(rb[:n], func(m []byte) {
			typ, seq := binary.NativeEndian.Uint16(m[4:]), binary.NativeEndian.Uint32(m[8:])
			if typ == unix.NLMSG_ERROR && seq >= first && seq < first+uint32(len(reqs)) && len(m) >= unix.NLMSG_HDRLEN+4 {
				pending--
				if e := int32(binary.NativeEndian.Uint32(m[16:])); e != 0 && firstErr == nil {
					firstErr = &Error{Op: reqs[seq-first].op, Errno: syscall.Errno(-e), Msg: ExtAckMsg(m)}
				}
			}
		})
		if err != nil {
			return err
		}
	}
	return firstErr
}

// recv reads the kernel's next datagram into rb and returns its length.
func (c *Conn) recv(rb []byte) (int, error) {
	for {
		n, from, err := unix.Recvfrom(c.fd, rb, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("rtnetlink receive: %w", err)
		}
		if sa, ok := from.(*unix.SockaddrNetlink); ok && sa.Pid == 0 {
			return n, nil
		} // else not the kernel's: another process may send to this socket
	}
}

// eachMessage calls fn with each netlink message of b, header included,
// and refuses a message whose length is shorter than its header or runs
// past b; the padding after the last one may be missing.
func eachMessage(b []byte, fn func(m []byte)) error {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return errors.New("rtnetlink: malformed answer")
		}
		fn(b[:l])
		b = b[min(align(l), len(b)):]
	}
	return nil
}

// ExtAckMsg returns NLMSGERR_ATTR_MSG of a netlink error message (its
// header included), if present: the kernel's reason in words.
func ExtAckMsg(m []byte) string {
	// nlmsghdr, error code, the request's nlmsghdr (capped: NLM_F_CAPPED
	// is set when only the header is echoed), then attributes.
	flags := binary.NativeEndian.Uint16(m[6:])
	off := unix.NLMSG_HDRLEN + 4 + unix.NLMSG_HDRLEN
	if flags&unix.NLM_F_CAPPED == 0 && len(m) >= unix.NLMSG_HDRLEN+4+4 {
		off = unix.NLMSG_HDRLEN + 4 + align(int(binary.NativeEndian.Uint32(m[unix.NLMSG_HDRLEN+4:])))
	}
	for off+4 <= len(m) {
		l := int(binary.NativeEndian.Uint16(m[off:]))
		t := binary.NativeEndian.Uint16(m[off+2:])
		if l < 4 || off+l > len(m) {
			return ""
		}
		if t == unix.NLMSGERR_ATTR_MSG {
			v := m[off+4 : off+l]
			for i, c := range v {
				if c == 0 {
					v = v[:i]
					break
				}
			}
			return string(v)
		}
		off += align(l)
	}
	return ""
}

func align(n int) int { return (n + 3) &^ 3 }
