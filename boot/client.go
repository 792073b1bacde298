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

// SocketPath is the control socket a client uses: $BERTH_SOCKET, or
// DefaultSocket.
func SocketPath() string {
	if p := os.Getenv("BERTH_SOCKET"); p != "" {
		return p
	}
	return DefaultSocket
}

// Call sends one request to berth's control socket and calls each for
// every response: once, or once per batch of lines for logs (More, or
// Follow), until each returns an error or berth hangs up; a progress response
// (Response.Progress) comes before the answer and does not end the call.
func Call(socket string, req Request, each func(Response) error) error {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return fmt.Errorf("connect to berth at %s: %w", socket, err)
	}
	defer c.Close()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return sendFailed(c, err)
	}
	dec := json.NewDecoder(bufio.NewReader(c))
	got, more := false, false
	for {
		var resp Response
		if err := dec.Decode(&resp); err != nil {
			switch {
			case more:
				return fmt.Errorf("berth hung up before the last batch of lines (a client that leaves an answer unread for %s is cut off): %w", clientWriteTimeout, err)
			case got:
				return nil
			}
			return fmt.Errorf("read berth's answer: %w", err)
		}
		got, more = true, resp.More
		if resp.Error != "" {
			return errors.New(resp.Error)
		}
		if err := each(resp); err != nil {
			return err
		}
		if !req.Follow && resp.Progress == "" && !resp.More {
			return nil
		}
	}
}

// sendFailed is the error of a request that could not be sent (err) on
// c: berth may have answered before reading it (busy, or a client that
// is not root) and hung up, and its answer, read for at most
// sendFailedWait, says more than "broken pipe".
func sendFailed(c net.Conn, err error) error {
	c.SetReadDeadline(time.Now().Add(sendFailedWait))
	var resp Response
	if json.NewDecoder(c).Decode(&resp) == nil && resp.Error != "" {
		return errors.New(resp.Error)
	}
	return fmt.Errorf("send to berth: %w", err)
}

// sendFailedWait bounds sendFailed's wait for berth's answer.
const sendFailedWait = time.Second

// Exec sends an exec request: with stdio (the client's stdin, stdout and
// stderr; none with a terminal) as SCM_RIGHTS. It calls started with
// berth's first answer and, with a terminal, the terminal's master, then
// waits for the command's end and returns its exit status: the
// command's own, 128+N for signal N, or — with err set — the status
// berth exec gives for the failure (ExecNotRunning, 125, 126, 127).
func Exec(socket string, req Request, stdio []*os.File, started func(Response, *os.File)) (int, error) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return 125, fmt.Errorf("connect to berth at %s: %w", socket, err)
	}
	uc := c.(*net.UnixConn)
	defer uc.Close()
	line, err := json.Marshal(req)
	if err != nil {
		return 125, err
	}
	var fds []int
	for _, f := range stdio {
		fds = append(fds, int(f.Fd()))
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := uc.WriteMsgUnix(append(line, '\n'), oob, nil); err != nil {
		return 125, sendFailed(uc, err)
	}
	r := &fdReader{c: uc, max: 1}
	dec := json.NewDecoder(r)
	for first := true; ; first = false {
		var resp Response
		if err := dec.Decode(&resp); err != nil {
			if first {
				return 125, fmt.Errorf("read berth's answer: %w", err)
			}
			return 125, fmt.Errorf("berth hung up before the command ended: %w", err)
		}
		if resp.Error != "" {
			code := 125
			if resp.ExitCode != nil {
				code = *resp.ExitCode
			}
			return code, errors.New(resp.Error)
		}
		if first {
			var pty *os.File
			for _, fd := range r.take() {
				if pty == nil {
					pty = os.NewFile(uintptr(fd), "pty master")
				} else {
					unix.Close(fd)
				}
			}
			started(resp, pty)
			continue
		}
		if resp.ExitCode != nil {
			return *resp.ExitCode, nil
		}
	}
}

// fdReader reads a connection's bytes and keeps the fds that come with
// them (SCM_RIGHTS), at most max per read: the kernel closes the rest.
type fdReader struct {
	c   *net.UnixConn
	max int
	fds []int
}

func (r *fdReader) Read(p []byte) (int, error) {
	oob := make([]byte, unix.CmsgSpace(4*r.max))
	n, oobn, _, _, err := r.c.ReadMsgUnix(p, oob)
	// On an error (the read deadline passed, say) the counts may be -1:
	// bufio panics on a negative count.
	n, oobn = max(n, 0), max(oobn, 0)
	if msgs, perr := unix.ParseSocketControlMessage(oob[:oobn]); perr == nil {
		for _, m := range msgs {
			if fds, err := unix.ParseUnixRights(&m); err == nil {
				r.fds = append(r.fds, fds...)
			}
		}
	}
	return n, err
}

// take returns the fds received so far.
func (r *fdReader) take() []int {
	fds := r.fds
	r.fds = nil
	return fds
}
