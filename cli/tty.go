package cli

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// terminal connects berth run's own terminal to a container's pty master:
// raw mode while the container runs, window size kept in sync.
type terminal struct {
	in     *os.File // berth's own stdin
	master *os.File
	saved  *unix.Termios // nil when stdin is not a terminal
	ended  chan struct{} // closed by restore: the workload has ended
	done   chan struct{} // closed when the container's output has ended
}

// eioRetry is how long the output relay waits after an EIO of the
// master (no slave open) before it reads again.
const eioRetry = 20 * time.Millisecond

// attachTerminal starts copying between stdin/stdout and master.
func attachTerminal(master, in, out *os.File) *terminal {
	t := &terminal{in: in, master: master, ended: make(chan struct{}), done: make(chan struct{})}
	if st, err := unix.IoctlGetTermios(int(in.Fd()), unix.TCGETS); err == nil {
		saved := *st
		t.saved = &saved
		raw := *st
		raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		raw.Oflag &^= unix.OPOST
		raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		raw.Cflag &^= unix.CSIZE | unix.PARENB
		raw.Cflag |= unix.CS8
		raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
		_ = unix.IoctlSetTermios(int(in.Fd()), unix.TCSETS, &raw)
		t.resize()
	}
	go func() { _, _ = io.Copy(master, in) }()
	go t.relayOutput(out)
	return t
}

// relayOutput copies the container's output from the master to out. The
// master reads EIO while no process holds the slave open, which a
// workload that closes its stdio and opens /dev/tty again goes through
// too: EIO ends the copy only once the workload has ended (restore),
// when what it left has been read; before, the copy waits and reads on.
func (t *terminal) relayOutput(out io.Writer) {
	defer close(t.done)
	buf := make([]byte, 32<<10)
	for {
		// Looked at before the read: an EIO after the end is the end.
		var ended bool
		select {
		case <-t.ended:
			ended = true
		default:
		}
		n, err := t.master.Read(buf)
		if n > 0 {
			if _, werr := out.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err == nil {
			continue
		}
		if ended || !errors.Is(err, syscall.EIO) {
			return
		}
		select {
		case <-t.ended:
		case <-time.After(eioRetry):
		}
	}
}

// termSize is the window size of the terminal f; 0 by 0 when f is not
// one.
func termSize(f *os.File) (rows, cols uint16) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0
	}
	return ws.Row, ws.Col
}

// resize copies berth's window size to the container's terminal.
func (t *terminal) resize() {
	if t == nil || t.saved == nil {
		return
	}
	if ws, err := unix.IoctlGetWinsize(int(t.in.Fd()), unix.TIOCGWINSZ); err == nil {
		_ = unix.IoctlSetWinsize(int(t.master.Fd()), unix.TIOCSWINSZ, ws)
	}
}

// restore, once the workload has ended, waits briefly for its last
// output, closes the master and puts berth's terminal back as it was.
func (t *terminal) restore() {
	close(t.ended)
	select {
	case <-t.done:
	case <-time.After(time.Second):
	}
	t.master.Close()
	if t.saved != nil {
		_ = unix.IoctlSetTermios(int(t.in.Fd()), unix.TCSETS, t.saved)
	}
}
