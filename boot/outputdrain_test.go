package boot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// drainUnit is a supervisor with one container, web, whose output
// copyOutput feeds into its ring, and the pipe that output comes by.
func drainUnit(t *testing.T) (*supervisor, *unit, *drainingPipe, *os.File) {
	t.Helper()
	cfg, err := ParseConfig("f.toml", []byte("[[container]]\nname = \"web\"\nimage = \"i\"\nlog_console = false\nlog_size = \"64M\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := newSupervisor(&booter{log: NewLogger(io.Discard)}, cfg)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return s, s.units["web"], &drainingPipe{f: r}, w
}

// writeUntilClosed writes "after N" lines to w (every pause, none for a
// flood) until it fails, and then sends that error.
func writeUntilClosed(w *os.File, pause time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "after %d\n", i); err != nil {
				done <- err
				return
			}
			time.Sleep(pause)
		}
	}()
	return done
}

// copyUntilDone runs copyOutput to its end; the limit is a hang guard.
func copyUntilDone(t *testing.T, s *supervisor, u *unit, out *drainingPipe) {
	t.Helper()
	done := make(chan struct{})
	go func() { s.copyOutput(u, out, newOutputLimiter(time.Now())); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("copyOutput did not end after the exit, with a writer left")
	}
}

// ringLines counts the lines of u's ring that begin with prefix.
func ringLines(u *unit, prefix string) int {
	n := 0
	for _, l := range u.log.tail(0) {
		if strings.HasPrefix(l.Text, prefix) {
			n++
		}
	}
	return n
}

// TestOutputDrain: once a container's first process has exited, its
// output pipe is read for what it held then, whole, and then only by
// the drain rule, though a writer (a process of another container
// handed the pipe) writes on, flooding or trickling: then the pipe is
// closed and the writer gets EPIPE. A writer left but silent ends the
// reading at DrainQuiet.
func TestOutputDrain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pause time.Duration // between the writer's lines; -1: it does not write
	}{{"a flood", 0}, {"a trickle", DrainQuiet / 4}, {"silent", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			s, u, out, w := drainUnit(t)
			const backlog = 3000 // ~36 KB, more than a second's burst of lines
			for i := range backlog {
				fmt.Fprintf(w, "before %d\n", i)
			}
			out.ended(time.Now())
			var wrote <-chan error
			if tc.pause >= 0 {
				wrote = writeUntilClosed(w, tc.pause)
			}
			copyUntilDone(t, s, u, out)
			if n := ringLines(u, "before "); n != backlog {
				t.Errorf("%d lines of the %d in the pipe at the exit were kept", n, backlog)
			}
			// "after N\n" is 8 bytes at least.
			if n := ringLines(u, "after "); n > outputDrainBytes/8+1 {
				t.Errorf("%d lines read after the exit, more than %d bytes", n, outputDrainBytes)
			}
			if wrote == nil {
				return
			}
			select {
			case err := <-wrote:
				if !errors.Is(err, syscall.EPIPE) {
					t.Errorf("the writer left: %v, want EPIPE", err)
				}
			case <-time.After(time.Minute):
				t.Error("the writer left could still write: the pipe was not closed")
			}
		})
	}
}

// TestOutputDrainEnd: a pipe whose writers all close is read to its
// end, the exit before or after.
func TestOutputDrainEnd(t *testing.T) {
	for _, exitFirst := range []bool{true, false} {
		s, u, out, w := drainUnit(t)
		fmt.Fprintf(w, "last words\nno newline")
		if exitFirst {
			out.ended(time.Now())
		}
		w.Close()
		copyUntilDone(t, s, u, out)
		if !exitFirst {
			out.ended(time.Now()) // the pipe is closed: a no-op
		}
		if got := u.log.tail(0); len(got) != 2 || got[0].Text != "last words" || got[1].Text != "no newline" {
			t.Errorf("exit first %v: %+v", exitFirst, got)
		}
	}
}
