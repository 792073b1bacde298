package boot

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// lateAnswers is a stand-in supervisor whose stop, restart and exec
// requests are answered late, as berth's are: stop and restart once the
// container has stopped, exec (after its pid) once its command has ended.
// Each request's late answer goes on held, for the test to give.
func lateAnswers(held chan<- func()) func(request) {
	return func(r request) {
		switch r.Verb {
		case "exec":
			exited := make(chan syscall.WaitStatus, 1) // as execReaped makes it
			r.reply <- reply{Response: Response{ExecPid: 4242}, exited: exited}
			held <- func() { exited <- 0 }
		case "stop", "restart":
			held <- func() { r.reply <- reply{Response: Response{Message: "stopped"}} }
		default:
			r.reply <- reply{Response: Response{Processes: []Process{}}}
		}
	}
}

// askLate sends a request of verb for the container fixlb-web (exec's
// with stdio) and returns the connection, its decoder and the request's
// late answer once the stand-in supervisor has taken it (and, for exec,
// berth has sent the command's pid).
func askLate(t *testing.T, sock, verb string, stdio []int, held <-chan func()) (*net.UnixConn, *json.Decoder, func()) {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	uc := c.(*net.UnixConn)
	line, oob := fmt.Sprintf(`{"verb":%q,"name":"fixlb-web"}`, verb), []byte(nil)
	if verb == "exec" {
		line, oob = `{"verb":"exec","name":"fixlb-web","exec":{"args":["sleep","100000"]}}`, unix.UnixRights(stdio...)
	}
	if _, _, err := uc.WriteMsgUnix([]byte(line+"\n"), oob, nil); err != nil {
		uc.Close()
		t.Fatalf("%s: %v", verb, err)
	}
	uc.SetReadDeadline(time.Now().Add(10 * time.Second))
	dec := json.NewDecoder(uc)
	var late func()
	select {
	case late = <-held:
	case <-time.After(5 * time.Second):
		var resp Response
		err := dec.Decode(&resp)
		uc.Close()
		t.Fatalf("%s: not taken by the supervisor; answer %+v, %v", verb, resp, err)
	}
	if verb == "exec" {
		var resp Response
		if err := dec.Decode(&resp); err != nil || resp.ExecPid != 4242 {
			uc.Close()
			t.Fatalf("exec: first answer %+v, %v; want the pid", resp, err)
		}
	}
	return uc, dec, late
}

// giveLate gives each late answer, which nobody reads any more: none
// may block the supervisor.
func giveLate(t *testing.T, lates []func()) {
	t.Helper()
	for _, late := range lates {
		done := make(chan struct{})
		go func() { late(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a late answer to a client that hung up blocks the supervisor")
		}
	}
}

// TestControlHangUpFreesSlot: a client that hangs up while berth waits
// for its answer — stop or restart until the container has stopped,
// exec until its command has ended — gives its control slot back then,
// not when the answer comes; the stop or the command goes on, and its
// late answer blocks nothing. More than maxControlConns such clients
// locked every verb out ("busy"), poweroff included. A client that only
// shuts its writing side has not hung up: it gets its answer.
func TestControlHangUpFreesSlot(t *testing.T) {
	held := make(chan func(), 2*maxControlConns)
	_, sock := controlTestBooterWith(t, lateAnswers(held))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	stdio := []int{int(r.Fd()), int(w.Fd()), int(w.Fd())}
	for _, verb := range []string{"stop", "restart", "exec"} {
		t.Run(verb+" hung up", func(t *testing.T) {
			var lates []func()
			defer func() { giveLate(t, lates) }()
			for range maxControlConns + 2 {
				c, _, late := askLate(t, sock, verb, stdio, held)
				lates = append(lates, late)
				c.Close()
			}
			if resp := askControl(t, sock, `{"verb":"ps"}`); resp.Error != "" {
				t.Errorf("after %d clients of %s hung up: %+v", maxControlConns+2, verb, resp)
			}
		})
		t.Run(verb+" half closed", func(t *testing.T) {
			c, dec, late := askLate(t, sock, verb, stdio, held)
			defer c.Close()
			c.CloseWrite()
			time.Sleep(2 * peerClosedPoll) // berth has read the EOF
			late()
			var resp Response
			err := dec.Decode(&resp)
			switch {
			case err != nil:
				t.Errorf("%s, the writing side shut: %v; want the answer", verb, err)
			case verb == "exec" && (resp.ExitCode == nil || *resp.ExitCode != 0):
				t.Errorf("exec, the writing side shut: %+v; want exit code 0", resp)
			case verb != "exec" && !strings.Contains(resp.Message, "stopped"):
				t.Errorf("%s, the writing side shut: %+v; want stopped", verb, resp)
			}
		})
	}
}
