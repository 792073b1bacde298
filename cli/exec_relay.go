package cli

import (
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/boot"
)

// Once the command has exited, berth exec copies what is left of its
// output until it has been quiet for relayQuiet, and for relayDrain at
// most: a process the command left behind, or any process of the
// container that reopened its output, cannot keep berth exec running.
// berth drains a container's output after its exit by the same rule.
const (
	relayQuiet = boot.DrainQuiet
	relayDrain = boot.DrainMax
)

// relay is berth exec's stdio without -t: pipes between this process and
// the command, copied here. The command never holds this process's own
// files: a process of the container could reopen them through
// /proc/PID/fd of the command, with any access their owner's
// permissions allow (a file given only as input, written; the
// operator's terminal, read after berth exec ended). A pipe reopened is
// the same pipe, and ends with berth exec.
//
// A terminal is not copied to the command's stdin, which gets an end of
// file at once: reading it would eat what the operator types next, and
// stop berth exec run in the background (SIGTTIN); -t gives the command
// a terminal. Stdout and stderr that are one file (2>&1, a terminal)
// share one pipe, so their lines keep their order.
type relay struct {
	child []*os.File // the command's stdin, stdout and stderr, handed to berth
	outs  []*os.File // the read ends of its output, copied here
	in    *os.File   // the write end of its stdin, nil when closed at once
	mu    sync.Mutex
	end   time.Time // zero while the command runs, then relayDrain after its exit
	wg    sync.WaitGroup
}

// newRelay makes the pipes and starts copying.
func newRelay(stdin *os.File, stdout, stderr io.Writer) (*relay, error) {
	// A closed stdout must fail the copy, not end berth exec with
	// SIGPIPE before it reports the command's status.
	signal.Ignore(syscall.SIGPIPE)
	r := &relay{}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	r.child = []*os.File{inR, outW, outW}
	r.outs = []*os.File{outR}
	writers := []io.Writer{stdout}
	if !sameFile(stdout, stderr) {
		errR, errW, err := os.Pipe()
		if err != nil {
			r.closeAll(inR, inW, outR, outW)
			return nil, err
		}
		r.child[2] = errW
		r.outs = append(r.outs, errR)
		writers = append(writers, stderr)
	}
	if stdin == nil || isTerminal(stdin) {
		inW.Close()
	} else {
		r.in = inW
		go func() {
			// Left blocked on a slow input once the command has ended:
			// berth exec does not wait for it.
			_, _ = io.Copy(inW, stdin)
			inW.Close()
		}()
	}
	for i, rd := range r.outs {
		r.wg.Add(1)
		go r.copyOut(rd, writers[i])
	}
	return r, nil
}

// started closes this process's copies of the command's ends, once
// berth has them: the command's exit (and its children's) then ends
// the output.
func (r *relay) started() {
	for _, f := range r.child {
		f.Close() // stdout's, given twice, is closed once; then ErrClosed
	}
}

// copyOut copies one of the command's outputs to w until its end, or
// once the command has exited, until it is quiet or drained (above). A
// w that fails (a closed pipe) closes the output: the command gets
// EPIPE or SIGPIPE, as it would writing to w itself.
func (r *relay) copyOut(rd *os.File, w io.Writer) {
	defer r.wg.Done()
	defer rd.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := rd.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
		r.mu.Lock()
		end := r.end
		r.mu.Unlock()
		if !end.IsZero() {
			_ = rd.SetReadDeadline(minTime(time.Now().Add(relayQuiet), end))
		}
	}
}

// finish is called once the command has ended (or failed to start): its
// input is closed and its output copied as copyOut says.
func (r *relay) finish() {
	r.started() // again, for a start that failed: closing twice is harmless
	now := time.Now()
	r.mu.Lock()
	r.end = now.Add(relayDrain)
	r.mu.Unlock()
	if r.in != nil {
		r.in.Close()
	}
	for _, f := range r.outs {
		_ = f.SetReadDeadline(now.Add(relayQuiet))
	}
	r.wg.Wait()
}

func (r *relay) closeAll(fs ...*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// sameFile reports whether two writers are one destination: the same
// writer, or files on the same inode (2>&1, one terminal).
func sameFile(a, b io.Writer) bool {
	if a == b {
		return true
	}
	fa, okA := a.(*os.File)
	fb, okB := b.(*os.File)
	if !okA || !okB {
		return false
	}
	var sa, sb unix.Stat_t
	if unix.Fstat(int(fa.Fd()), &sa) != nil || unix.Fstat(int(fb.Fd()), &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
