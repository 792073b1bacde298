package boot

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestControlSilentClient: a client that sends nothing, or half a
// request, until its read deadline passes is cut off, and the control
// socket goes on answering; PID 1 does not panic (the read at the
// deadline reported -1 bytes, and bufio panicked on it).
func TestControlSilentClient(t *testing.T) {
	defer func(d time.Duration) { controlReadTimeout = d }(controlReadTimeout)
	controlReadTimeout = 2 * time.Second // half a request must land before it, on a loaded machine too
	b, sock := controlTestBooter(t)
	for _, sent := range []string{"", `{"verb":`} {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(c, sent)
		c.SetReadDeadline(time.Now().Add(time.Minute))
		// Nothing sent: no answer; half a request: refused as bad.
		// Cut off is EOF from berth, not this test's own deadline.
		if line, err := bufio.NewReader(c).ReadString('\n'); (sent == "") != errors.Is(err, io.EOF) || (err == nil && !strings.Contains(line, "bad request")) {
			t.Errorf("sent %q: answer %q, %v", sent, line, err)
		}
		c.Close()
		if resp := askControl(t, sock, `{"verb":"ps"}`); resp.Error != "" {
			t.Errorf("after a client that sent %q: %+v", sent, resp)
		}
	}
	select {
	case err := <-b.fatal:
		t.Errorf("a fatal error: %v", err)
	default:
	}
}

// TestControlConnsBounded: past maxControlConns connections open at once,
// a new one is told the socket is busy and closed at once (its fd given
// back); once they close, requests are answered again.
func TestControlConnsBounded(t *testing.T) {
	_, sock := controlTestBooter(t)
	held := holdConns(t, sock, maxControlConns, "")
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	if resp := askControl(t, sock, `{"verb":"ps"}`); !strings.Contains(resp.Error, "busy") {
		t.Errorf("past the bound: %+v, want busy", resp)
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := askControl(t, sock, `{"verb":"ps"}`)
		if resp.Error == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the connections closed: %+v", resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestControlFollowersBounded: berth logs -f connections, never written
// to while their container is quiet, take at most half the control
// connections; past that a follower is told busy, and ps (or poweroff)
// is still answered. A follower that leaves frees its slot.
func TestControlFollowersBounded(t *testing.T) {
	ring := newLogRing(1<<20, nil)
	_, sock := controlTestBooterWith(t, func(r request) {
		rep := reply{Response: Response{Processes: []Process{}}}
		if r.Verb == "logs" {
			rep.ring = ring
		}
		r.reply <- rep
	})
	follow := `{"verb":"logs","name":"quiet","follow":true}`
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range maxFollowers {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		c.SetDeadline(time.Now().Add(time.Minute))
		fmt.Fprintln(c, follow)
		var first Response
		if err := json.NewDecoder(c).Decode(&first); err != nil || first.Error != "" {
			t.Fatalf("follower %d: %+v, %v", len(held), first, err)
		}
	}
	if resp := askControl(t, sock, follow); !strings.Contains(resp.Error, fmt.Sprintf("busy: %d berth logs -f are following already", maxFollowers)) {
		t.Errorf("a follower past the bound: %+v, want busy", resp)
	}
	if resp := askControl(t, sock, `{"verb":"ps"}`); resp.Error != "" {
		t.Errorf("ps beside %d followers: %+v", maxFollowers, resp)
	}
	held[0].Close()
	held = held[1:]
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(time.Minute))
		fmt.Fprintln(c, follow)
		var first Response
		json.NewDecoder(c).Decode(&first)
		if first.Error == "" {
			held = append(held, c)
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("a follower left, the next is still refused: %+v", first)
		}
	}
}

// controlTestBooter serves a control socket whose requests a stand-in
// supervisor answers (ps: no processes).
func controlTestBooter(t *testing.T) (*booter, string) {
	t.Helper()
	return controlTestBooterWith(t, func(r request) { r.reply <- reply{Response: Response{Processes: []Process{}}} })
}

// controlTestBooterWith serves a control socket whose requests handle
// takes, on the stand-in supervisor loop.
func controlTestBooterWith(t *testing.T, handle func(request)) (*booter, string) {
	t.Helper()
	b := &booter{log: NewLogger(&lockedBuffer{}), requests: make(chan request), fatal: make(chan error, 1)}
	sock := filepath.Join(t.TempDir(), "berth.sock")
	if err := b.serveControl(sock); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.closeControl)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case r := <-b.requests:
				handle(r)
			case <-done:
				return
			}
		}
	}()
	return b, sock
}

// askControl sends one request line and decodes the answer.
func askControl(t *testing.T, sock, line string) Response {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintln(c, line)
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		t.Fatalf("answer to %s: %v", line, err)
	}
	return resp
}

// TestExecRefusedBeforeRead: berth refuses a client that is not root as
// soon as it connects, before reading its request; an exec request (with
// its fds) written after the refusal fails to send, and the client says
// why berth refused, not "broken pipe".
func TestExecRefusedBeforeRead(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "berth.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			json.NewEncoder(c).Encode(Response{Error: "permission denied: the control socket is for root only"})
			c.Close()
		}
	}()
	for range 5 {
		_, err := Exec(sock, Request{Verb: "exec", Name: "web", Exec: &ExecRequest{Args: []string{strings.Repeat("x", 200<<10)}}}, nil, func(Response, *os.File) {})
		if err == nil || !strings.Contains(err.Error(), "root only") {
			t.Errorf("exec: %v, want berth's refusal", err)
		}
	}
}

// TestControlRequestTooLong: a request line past 64 KiB is answered as
// too long, not parsed cut (a name of 70,000 bytes was "unexpected end of
// JSON input"); one of exactly 64 KiB is parsed and goes on.
func TestControlRequestTooLong(t *testing.T) {
	_, sock := controlTestBooter(t)
	for _, tc := range []struct {
		nameLen int
		want    string
	}{
		{70000, "bad request: request too long: more than 64 KiB without a newline"},
		{maxRequestBytes - len(`{"verb":"stop","name":""}`+"\n"), ""}, // the supervisor's to answer
		{maxRequestBytes - len(`{"verb":"stop","name":""}`+"\n") + 1, "bad request: request too long"},
	} {
		resp := askControl(t, sock, `{"verb":"stop","name":"`+strings.Repeat("a", tc.nameLen)+`"}`)
		if (tc.want == "") != (resp.Error == "") || !strings.Contains(resp.Error, tc.want) {
			t.Errorf("name of %d bytes: %.200q, want %q", tc.nameLen, resp.Error, tc.want)
		}
	}
}

// TestCallBusyBeforeRead: berth answers a connection past
// maxControlConns "busy" and closes it without reading its request; a
// request written after that fails to send, and Call says berth is busy,
// not "broken pipe".
func TestCallBusyBeforeRead(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "berth.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := fmt.Sprintf("busy: %d control connections are open already, try again", maxControlConns)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			json.NewEncoder(c).Encode(Response{Error: busy})
			c.Close()
		}
	}()
	for range 5 {
		// Larger than the socket's buffer: the write fails once berth closes.
		err := Call(sock, Request{Verb: "apply", Path: strings.Repeat("x", 200<<10)}, func(Response) error { return nil })
		if err == nil || err.Error() != busy {
			t.Errorf("Call = %v, want berth's %q", err, busy)
		}
	}
}
