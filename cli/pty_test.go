package cli

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a new pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// ptyGuard bounds every wait on a terminal: a hang guard, not a timing
// check; a test that reaches it has failed.
const ptyGuard = 60 * time.Second

// ptyOutput is what a terminal shows: its master side copied into a
// buffer that the test may read while the copy goes on.
type ptyOutput struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ended chan struct{}
}

// readPTY copies master until its read fails: EIO once every process
// holding the slave side has closed it.
func readPTY(master *os.File) *ptyOutput {
	p := &ptyOutput{ended: make(chan struct{})}
	go func() {
		defer close(p.ended)
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			p.mu.Lock()
			p.buf.Write(b[:max(n, 0)])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return p
}

// String is what the terminal has shown so far.
func (p *ptyOutput) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// waitFor waits until the terminal has shown s; it fails the test if the
// terminal closes first or the guard passes.
func (p *ptyOutput) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(ptyGuard)
	for !strings.Contains(p.String(), s) {
		select {
		case <-p.ended:
			if strings.Contains(p.String(), s) {
				return
			}
			t.Fatalf("the terminal closed before showing %q; it showed:\n%q", s, lastBytes(p.String(), 500))
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the terminal did not show %q in %v; it showed:\n%q", s, ptyGuard, lastBytes(p.String(), 500))
		}
	}
}

// end waits until every process holding the slave side has closed it and
// returns all the terminal showed. Called once berth has exited: a
// process left holding the terminal fails the test.
func (p *ptyOutput) end(t *testing.T) string {
	t.Helper()
	select {
	case <-p.ended:
	case <-time.After(ptyGuard):
		t.Errorf("the terminal was still open %v after berth exited: a process holds it; it showed:\n%q", ptyGuard, lastBytes(p.String(), 500))
	}
	return p.String()
}
