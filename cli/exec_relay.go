package cli

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// relayDrain is how long, once the command has exited, berth exec still
// waits for more of its output: what a process it left behind writes
// in that time is copied too, as long as it keeps writing.
const relayDrain = 100 * time.Millisecond

// relay is berth exec's stdio without -t: three pipes between this
// process and the command, copied here. The command never holds this
// process's own files: a process of the container could reopen them
// through /proc/PID/fd of the command, with any access their owner's
// permissions allow (a file given only as input, written; the
// operator's terminal, read after berth exec ended). A pipe reopened
// is the same pipe, and ends with berth exec.
type relay struct {
	child  []*os.File // the command's stdin, stdout and stderr, handed to berth
	in     *os.File   // written with this process's stdin
	outs   []*os.File // the command's stdout and stderr, read here
	exited atomic.Bool
	wg     sync.WaitGroup
}

// newRelay makes the pipes and starts copying stdin to the command.
func newRelay(stdin *os.File, stdout, stderr io.Writer) (*relay, error) {
	r := &relay{}
	var ends [3][2]*os.File
	for i := range ends {
		rd, w, err := os.Pipe()
		if err != nil {
			r.closeAll(ends[:i])
			return nil, err
		}
		ends[i] = [2]*os.File{rd, w}
	}
	r.child = []*os.File{ends[0][0], ends[1][1], ends[2][1]}
	r.in, r.outs = ends[0][1], []*os.File{ends[1][0], ends[2][0]}
	go func() {
		// Left blocked on a terminal once the command has ended: berth
		// exec does not wait for it.
		if stdin != nil {
			_, _ = io.Copy(r.in, stdin)
		}
		r.in.Close()
	}()
	for i, w := range []io.Writer{stdout, stderr} {
		r.wg.Add(1)
		go r.copyOut(r.outs[i], w)
	}
	return r, nil
}

// started closes this process's copies of the command's ends, once
// berth has them: the command's exit (and its children's) then ends
// the output.
func (r *relay) started() {
	for _, f := range r.child {
		f.Close()
	}
}

// copyOut copies one of the command's outputs to w until its end, or
// once the command has exited, until it has been quiet for relayDrain.
// A w that fails (a closed pipe) closes the output: the command gets
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
		if r.exited.Load() {
			_ = rd.SetReadDeadline(time.Now().Add(relayDrain))
		}
	}
}

// finish is called once the command has ended (or failed to start): its
// input is closed and its output copied to its end or until quiet.
func (r *relay) finish() {
	r.started() // again, for a start that failed: closing twice is harmless
	r.exited.Store(true)
	r.in.Close()
	for _, f := range r.outs {
		if err := f.SetReadDeadline(time.Now().Add(relayDrain)); err != nil && !errors.Is(err, os.ErrClosed) {
			f.Close()
		}
	}
	r.wg.Wait()
}

func (r *relay) closeAll(ends [][2]*os.File) {
	for _, e := range ends {
		e[0].Close()
		e[1].Close()
	}
}
