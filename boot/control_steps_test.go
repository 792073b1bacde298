package boot

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketPair returns the two ends of a connected Unix stream socket pair.
func socketPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ends [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		ends[i] = c.(*net.UnixConn)
		t.Cleanup(func() { c.Close() })
	}
	return ends[0], ends[1]
}

// steps queues n steps of size bytes each, then the answer, on a channel
// as an update would send them.
func steps(n, size int) chan reply {
	ch := make(chan reply, n+1)
	for range n {
		ch <- reply{Response: Response{Progress: strings.Repeat("s", size)}}
	}
	ch <- reply{Response: Response{Message: "the answer"}}
	return ch
}

// TestForwardSteps: a client that reads gets every step in order and the
// answer is left to serveConn; one that has hung up, or reads nothing,
// costs the update nothing: every step is still taken, and no answer is
// to be written after a cut step.
func TestForwardSteps(t *testing.T) {
	t.Run("read", func(t *testing.T) {
		srv, cli := socketPair(t)
		rep, ok := forwardSteps(srv, json.NewEncoder(srv), steps(3, 10))
		if !ok || rep.Message != "the answer" {
			t.Fatalf("forwardSteps = %+v, %v; want the answer, true", rep.Response, ok)
		}
		srv.Close()
		sc := bufio.NewScanner(cli)
		n := 0
		for sc.Scan() {
			var r Response
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.Progress != strings.Repeat("s", 10) {
				t.Fatalf("line %d: %q (%v)", n, sc.Text(), err)
			}
			n++
		}
		if n != 3 {
			t.Errorf("the client read %d steps, want 3 (and not the answer)", n)
		}
	})
	t.Run("hung up", func(t *testing.T) {
		srv, cli := socketPair(t)
		cli.Close()
		ch := steps(5, 10)
		rep, ok := forwardSteps(srv, json.NewEncoder(srv), ch)
		if ok || rep.Message != "the answer" || len(ch) != 0 {
			t.Errorf("forwardSteps = %+v, %v with %d left; want the answer, false, none left", rep.Response, ok, len(ch))
		}
	})
	t.Run("not reading", func(t *testing.T) {
		old := clientWriteTimeout
		clientWriteTimeout = 200 * time.Millisecond
		t.Cleanup(func() { clientWriteTimeout = old })
		srv, _ := socketPair(t)
		// More than the socket's buffer: a write blocks until the deadline.
		ch := steps(40, 64<<10)
		rep, ok := forwardSteps(srv, json.NewEncoder(srv), ch)
		if ok || rep.Message != "the answer" || len(ch) != 0 {
			t.Errorf("forwardSteps = %+v, %v with %d left; want the answer, false, none left", rep.Response, ok, len(ch))
		}
	})
}

// TestFollowLogsNotReading: berth logs -f to a client that reads nothing
// ends once a line has waited clientWriteTimeout, its follower dropped:
// the container's output fills no socket of PID 1's for good.
func TestFollowLogsNotReading(t *testing.T) {
	old := clientWriteTimeout
	clientWriteTimeout = 200 * time.Millisecond
	t.Cleanup(func() { clientWriteTimeout = old })
	srv, _ := socketPair(t) // the client's end is never read
	ring := newLogRing(1<<20, nil)
	done := make(chan struct{})
	go func() { followLogs(srv, json.NewEncoder(srv), ring, 0); close(done) }()
	line := LogLine{Text: strings.Repeat("x", 64<<10)}
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		select {
		case <-done:
			ring.mu.Lock()
			subs := len(ring.subs)
			ring.mu.Unlock()
			if subs != 0 {
				t.Errorf("%d followers left on the ring", subs)
			}
			return
		default:
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("followLogs still writes to a client that reads nothing")
		}
		ring.add(line)
	}
}
