package boot

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestControlLongRequestsBounded: requests that wait (here stops of a
// container that does not stop) take at most maxLongConns connections;
// past that one is told busy, and the connections left keep berth ps
// (and poweroff) answered. They used to take every slot (review).
func TestControlLongRequestsBounded(t *testing.T) {
	var taken atomic.Int32
	_, sock := controlTestBooterWith(t, func(r request) {
		if r.Verb == "stop" {
			taken.Add(1) // never answered: the container does not stop
			return
		}
		r.reply <- reply{Response: Response{Processes: []Process{}}}
	})
	held := holdConns(t, sock, maxLongConns, `{"verb":"stop","name":"stubborn"}`)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for deadline := time.Now().Add(time.Minute); taken.Load() < maxLongConns; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) { // a hang guard
			t.Fatalf("%d of %d stops reached the supervisor", taken.Load(), maxLongConns)
		}
	}
	if resp := askControl(t, sock, `{"verb":"stop","name":"stubborn"}`); !strings.Contains(resp.Error, fmt.Sprintf("busy: %d requests that wait", maxLongConns)) {
		t.Errorf("a stop past the bound: %+v, want busy", resp)
	}
	if resp := askControl(t, sock, `{"verb":"exec","name":"stubborn","exec":{"args":["true"]}}`); !strings.Contains(resp.Error, "busy") || resp.ExitCode == nil || *resp.ExitCode != 125 {
		t.Errorf("an exec past the bound: %+v, want busy with status 125", resp)
	}
	for i := range maxControlConns - maxLongConns {
		if resp := askControl(t, sock, `{"verb":"ps"}`); resp.Error != "" {
			t.Errorf("ps %d beside %d waiting stops: %+v", i, maxLongConns, resp)
		}
	}
	// One stop's client leaves: its slot is free again.
	held[0].Close()
	held = held[1:]
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(c, `{"verb":"stop","name":"stubborn"}`)
		before := taken.Load()
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var resp Response
		err = json.NewDecoder(c).Decode(&resp)
		if err != nil && taken.Load() > before { // no answer: it waits, as it should
			held = append(held, c)
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("a waiting stop's client left, the next is still refused: %+v %v", resp, err)
		}
	}
}

// TestStopWaitersForgotten: the waiters of a container that does not
// stop, whose clients have left, are forgotten at the next stop: a
// client retrying with a timeout of its own grew the list (review).
func TestStopWaitersForgotten(t *testing.T) {
	u := &unit{name: "stubborn", state: stateStopping, health: &healthState{}}
	s := &supervisor{units: map[string]*unit{"stubborn": u}, order: []string{"stubborn"}}
	gone := make(chan struct{})
	close(gone)
	for range 1000 {
		s.stopRequest(u, request{Request: Request{Verb: "stop"}, reply: make(chan reply, 1), gone: gone})
	}
	live := make(chan struct{})
	s.stopRequest(u, request{Request: Request{Verb: "stop"}, reply: make(chan reply, 1), gone: live})
	s.stopRequest(u, request{Request: Request{Verb: "stop"}, reply: make(chan reply, 1), gone: live})
	if len(u.waiters) != 2 {
		t.Errorf("%d waiters after 1000 stops whose clients left and 2 whose clients wait, want 2", len(u.waiters))
	}
}

// TestNoContainerNameCut: a request for a container that is not there
// with a name of 60,000 control bytes is answered in a short line: the
// name is cut before it is quoted (each such byte takes 4 there).
func TestNoContainerNameCut(t *testing.T) {
	s := &supervisor{units: map[string]*unit{}, order: []string{"web"}}
	name := strings.Repeat("\x7f", 60000)
	for _, verb := range []string{"logs", "start", "stop", "restart", "exec"} {
		r := request{Request: Request{Verb: verb, Name: name}, reply: make(chan reply, 1)}
		s.handle(r)
		rep := <-r.reply
		if !strings.HasPrefix(rep.Error, `no container "\x7f`) || len(rep.Error) > 512 {
			t.Errorf("%s: %d bytes: %.80q", verb, len(rep.Error), rep.Error)
		}
	}
	if _, err := s.stats([]string{name}); err == nil || len(err.Error()) > 512 {
		t.Errorf("stats: %v", err)
	}
}

// holdConns opens n connections to the control socket, sends line on
// each (none when empty) and returns them, open.
func holdConns(t *testing.T, sock string, n int, line string) []net.Conn {
	t.Helper()
	var held []net.Conn
	for range n {
		c, err := net.Dial("unix", sock)
		if err != nil {
			for _, c := range held {
				c.Close()
			}
			t.Fatal(err)
		}
		held = append(held, c)
		if line != "" {
			fmt.Fprintln(c, line)
		}
	}
	return held
}

// TestLogAnswersBounded: while maxLogAnswers batches of lines are being
// written, another waits for its turn, up to clientWriteTimeout, then
// its connection is given up; once one ends, the next goes.
func TestLogAnswersBounded(t *testing.T) {
	defer func(d time.Duration) { clientWriteTimeout = d }(clientWriteTimeout)
	clientWriteTimeout = 100 * time.Millisecond
	for range maxLogAnswers {
		logAnswers <- struct{}{} // batches being written to clients that do not read
	}
	srv, cli := socketPair(t)
	err := answerLines(srv, json.NewEncoder(srv), Response{Lines: []LogLine{{Text: "x"}}})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("busy: %d answers of lines", maxLogAnswers)) {
		t.Errorf("a batch past the bound: %v, want busy", err)
	}
	<-logAnswers
	if err := answerLines(srv, json.NewEncoder(srv), Response{Lines: []LogLine{{Text: "x"}}}); err != nil {
		t.Errorf("a batch once one ended: %v", err)
	}
	var resp Response
	cli.SetReadDeadline(time.Now().Add(time.Minute))
	if err := json.NewDecoder(cli).Decode(&resp); err != nil || len(resp.Lines) != 1 {
		t.Errorf("the client read %+v, %v", resp, err)
	}
	for range maxLogAnswers - 1 {
		<-logAnswers
	}
}
