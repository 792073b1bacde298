package boot

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hostileRing is a full ring of 16 MiB whose lines are control
// characters, each 6 bytes as JSON: 96 MiB in one answer before berth
// sent it in batches.
func hostileRing() (r *logRing, lines, first int) {
	return hostileRingOf(strings.Repeat("\x01", 1000))
}

// hostileRingOf is a full ring of 16 MiB whose lines are a number and
// text.
func hostileRingOf(text string) (r *logRing, lines, first int) {
	r = newLogRing(16<<20, nil)
	for i := 0; r.dropped == 0; i++ {
		r.add(LogLine{Text: fmt.Sprintf("%08d", i) + text})
	}
	from, to := r.span(0)
	return r, int(to - from), int(from)
}

// maxLogAnswer bounds one answer of sendLogs: a batch's JSON, or its one
// line when that alone is over (the longest line the reader keeps, every
// byte invalid UTF-8: 6 bytes as JSON and its base64 in raw), and the
// answer's keys and commas.
var maxLogAnswer = max(logBatchBytes, jsonCost(LogLine{Text: strings.Repeat("\xff", maxLogLine)})) + 64 + logBatchLines

// TestSendLogsInBatches: berth logs of a large ring written by a hostile
// container is answered in batches, each bounded whatever the ring's
// size, every line once and in order, More on all but the last: lines
// of control characters, of invalid UTF-8 (each byte 6 as JSON, and
// base64 in raw), and lines of the longest kind, each an answer alone.
func TestSendLogsInBatches(t *testing.T) {
	for _, text := range []string{
		strings.Repeat("\x01", 1000),
		strings.Repeat("\xff", 1000),
		strings.Repeat("\xff", maxLogLine-8),
		strings.Repeat("<\u2028\"", 300),
	} {
		ring, lines, first := hostileRingOf(text)
		sendLogsChecked(t, ring, lines, first)
	}
}

// sendLogsChecked reads sendLogs's answers of ring, lines lines from
// number first, and checks them.
func sendLogsChecked(t *testing.T, ring *logRing, lines, first int) {
	t.Helper()
	srv, cli := socketPair(t)
	go func() { sendLogs(srv, json.NewEncoder(srv), ring, 0); srv.Close() }()
	rd := bufio.NewReaderSize(cli, 1<<20)
	got, answers, largest := 0, 0, 0
	for {
		msg, err := rd.ReadBytes('\n')
		if err != nil {
			break
		}
		answers++
		largest = max(largest, len(msg))
		var resp Response
		if err := json.Unmarshal(msg, &resp); err != nil {
			t.Fatalf("answer %d: %v", answers, err)
		}
		for _, l := range resp.Lines {
			if want := fmt.Sprintf("%08d", first+got); !strings.HasPrefix(l.Text, want) {
				t.Fatalf("line %d is %.8q", got, l.Text)
			}
			got++
		}
		if !resp.More {
			break
		}
	}
	if got != lines {
		t.Errorf("%d lines in %d answers, the ring holds %d", got, answers, lines)
	}
	if largest > maxLogAnswer {
		t.Errorf("the largest answer is %d bytes: more than %d", largest, maxLogAnswer)
	}
	if answers < 2 {
		t.Errorf("%d answers for a ring of %d lines", answers, lines)
	}
	t.Logf("%d lines in %d answers, the largest %d bytes", got, answers, largest)
}

// TestJSONCost: jsonCost is never below what a line costs as JSON, and
// within twice it.
func TestJSONCost(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "é", "\x00", "\x1b", "\x7f", "\xff", "\xc3", "<", ">", "&", "\"", "\\", "\u2028", "\u2029", "\ufffd", "\u0085", "\U0001F600"}
	for i := range 5000 {
		var b strings.Builder
		for range rng.IntN(64) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		l := LogLine{Time: time.Now(), Text: b.String()}
		j, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		if c := jsonCost(l); c < len(j) || c > 2*len(j)+64 {
			t.Fatalf("line %d %q: jsonCost %d, as JSON %d bytes", i, l.Text, c, len(j))
		}
	}
}

// TestCallReadsEveryBatch: the CLI's side (Call) reads batches until the
// one without More; -n N takes the last N lines.
func TestCallReadsEveryBatch(t *testing.T) {
	ring, lines, base := hostileRing()
	sock := serveRequests(t, func(c *net.UnixConn, req Request) {
		sendLogs(c, json.NewEncoder(c), ring, req.Lines)
	})
	for _, n := range []int{0, 1, logBatchLines + 1, lines, lines + 1} {
		got, first := 0, ""
		err := Call(sock, Request{Verb: "logs", Name: "x", Lines: n}, func(r Response) error {
			for _, l := range r.Lines {
				if got == 0 {
					first = l.Text[:8]
				}
				got++
			}
			return nil
		})
		want := min(n, lines)
		if n == 0 {
			want = lines
		}
		if err != nil || got != want || first != fmt.Sprintf("%08d", base+lines-want) {
			t.Errorf("-n %d: %d lines from %q, %v; want %d from %08d", n, got, first, err, want, base+lines-want)
		}
	}
}

// TestFollowLogsBatches: berth logs -f gets its backlog in batches too,
// then the lines that follow.
func TestFollowLogsBatches(t *testing.T) {
	ring, lines, _ := hostileRing()
	srv, cli := socketPair(t)
	go followLogs(srv, json.NewEncoder(srv), ring, 0)
	dec := json.NewDecoder(bufio.NewReaderSize(cli, 1<<20))
	got, answers := 0, 0
	cli.SetReadDeadline(time.Now().Add(time.Minute))
	for got < lines {
		var resp Response
		if err := dec.Decode(&resp); err != nil {
			t.Fatalf("after %d lines: %v", got, err)
		}
		got += len(resp.Lines)
		answers++
	}
	ring.add(LogLine{Text: "after"})
	var resp Response
	if err := dec.Decode(&resp); err != nil || len(resp.Lines) != 1 || resp.Lines[0].Text != "after" {
		t.Fatalf("followed %+v, %v; want the line after", resp.Lines, err)
	}
	if got != lines || answers < 2 {
		t.Errorf("backlog of %d lines in %d answers; want %d in several", got, answers, lines)
	}
}

// TestCallCutOff: a berth logs cut off after a batch marked more (PID 1
// gave up on a client that stopped reading) is an error, not a short
// log that looks whole.
func TestCallCutOff(t *testing.T) {
	sock := serveRequests(t, func(c *net.UnixConn, req Request) {
		json.NewEncoder(c).Encode(Response{Lines: []LogLine{{Text: "first"}}, More: true})
	})
	got := 0
	err := Call(sock, Request{Verb: "logs", Name: "x"}, func(r Response) error { got += len(r.Lines); return nil })
	if err == nil || !strings.Contains(err.Error(), "hung up before the last batch") || got != 1 {
		t.Errorf("Call = %v after %d lines; want the first line, then an error", err, got)
	}
}

// serveRequests answers each connection to a fresh socket with serve,
// after reading its one request; it returns the socket's path.
func serveRequests(t *testing.T, serve func(*net.UnixConn, Request)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "berth.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var req Request
			if err := json.NewDecoder(c).Decode(&req); err == nil {
				serve(c.(*net.UnixConn), req)
			}
			c.Close()
		}
	}()
	return sock
}

// TestFollowLogsHalfClosed: berth logs -f from a client that shuts its
// writing side after its request (socat, nc -N) goes on following: the
// EOF it reads is not a hang-up. It ends once the client closes its
// socket.
func TestFollowLogsHalfClosed(t *testing.T) {
	srv, cli := socketPair(t)
	ring := newLogRing(1<<20, nil)
	done := make(chan struct{})
	go func() { followLogs(srv, json.NewEncoder(srv), ring, 0); srv.Close(); close(done) }()
	cli.CloseWrite()
	cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	dec := json.NewDecoder(cli)
	var resp Response
	if err := dec.Decode(&resp); err != nil || len(resp.Lines) != 0 {
		t.Fatalf("first answer %+v, %v; want one with no lines", resp, err)
	}
	time.Sleep(2 * peerClosedPoll) // followLogs has read the EOF
	for i := range 3 {
		want := fmt.Sprintf("fixlb line %d", i)
		ring.add(LogLine{Text: want})
		var resp Response
		if err := dec.Decode(&resp); err != nil || len(resp.Lines) != 1 || resp.Lines[0].Text != want {
			t.Fatalf("after the writing side shut: %+v, %v; want %q", resp.Lines, err, want)
		}
	}
	cli.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("followLogs goes on after the client closed its socket")
	}
	ring.mu.Lock()
	defer ring.mu.Unlock()
	if len(ring.subs) != 0 {
		t.Errorf("%d followers left on the ring", len(ring.subs))
	}
}
