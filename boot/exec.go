package boot

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/container"
	"berth/internal/safe"
)

// ExecNotRunning is berth exec's exit status when the container is not
// running (stopped, exited, failed, waiting or backing off).
const ExecNotRunning = 124

// berth exec over the control socket: the client's request line comes
// with the command's stdin, stdout and stderr (SCM_RIGHTS): pipes, which
// berth exec copies from and to its own, or /dev/null, and nothing else
// (checkStdio); the supervisor loop
// starts the command in the container (container.Exec) with the reaper
// locked, so that its exit reaches the connection; berth answers once
// with the command's pid (and, with a terminal, its master, as
// SCM_RIGHTS), then once more with its exit status. No byte of the
// command's input or output passes through berth.

// serveExec answers an exec request; fds came with its line.
func (b *booter) serveExec(c *net.UnixConn, req Request, fds []*os.File) {
	defer closeFiles(fds)
	enc := json.NewEncoder(c)
	fail := func(code int, format string, args ...any) {
		answer(c, enc, Response{Error: fmt.Sprintf(format, args...), ExitCode: &code})
	}
	if req.Exec == nil || len(req.Exec.Args) == 0 {
		fail(125, "exec: missing command")
		return
	}
	if want := 3 - 3*btoi(req.Exec.TTY); len(fds) != want {
		fail(125, "exec: want %d fds (stdin, stdout, stderr) with the request, got %d", want, len(fds))
		return
	}
	for i, f := range fds {
		if err := checkStdio(f); err != nil {
			fail(125, "exec: fd %d: %v", i, err)
			return
		}
	}
	r := request{Request: req, reply: make(chan reply, 1), files: fds}
	select {
	case b.requests <- r:
	case <-time.After(10 * time.Second):
		fail(125, "berth's supervisor did not take the request within 10s")
		return
	}
	rep := <-r.reply
	if rep.Error != "" || rep.exited == nil {
		answer(c, enc, rep.Response)
		return
	}
	closeFiles(fds)
	if err := sendWithFile(c, rep.Response, rep.pty); err != nil {
		// The client is gone; the command runs on, reaped as any.
		return
	}
	ws, ok := untilHangUp(c, rep.exited) // buffered (execReaped)
	if !ok {
		return // the client was killed: the command runs on, reaped as any
	}
	code := exitStatus(ws)
	answer(c, enc, Response{ExitCode: &code})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkStdio takes a handed fd only when it is an anonymous pipe or
// /dev/null: anything else names a file, terminal or device of the host
// that a process of the container could reopen through /proc/PID/fd of
// the command, with any access its permissions allow, and keep after the
// command has ended (berth exec relays its own stdio through pipes). A
// pipe reopened is the same pipe. A socket is refused too: a listening
// one, a packet socket or one of the host's network would give the
// container what its network namespace keeps from it, and a connection
// to berth's own socket root's requests (review).
func checkStdio(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if fl&unix.O_PATH != 0 {
		return errors.New("an O_PATH handle cannot be stdio")
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		return errors.New("a socket cannot be stdio: the container could use it as the host's (hand a pipe)")
	case unix.S_IFIFO:
		var fs unix.Statfs_t
		if err := unix.Fstatfs(int(f.Fd()), &fs); err != nil {
			return err
		}
		if fs.Type == unix.PIPEFS_MAGIC {
			return nil
		}
		return errors.New("a named FIFO cannot be stdio: the container could reopen it (hand a pipe)")
	case unix.S_IFCHR:
		if unix.Major(uint64(st.Rdev)) == 1 && unix.Minor(uint64(st.Rdev)) == 3 {
			return nil // /dev/null
		}
		return errors.New("a terminal or device cannot be stdio: the container could reopen it (hand a pipe, or ask for a terminal of its own)")
	case unix.S_IFDIR:
		return errors.New("a directory cannot be stdio")
	}
	return errors.New("a file cannot be stdio: the container could reopen it for writing (hand a pipe)")
}

// sendWithFile writes resp as a JSON line, with f (when set) as
// SCM_RIGHTS, and closes f; as answer, it waits at most
// clientWriteTimeout for the client to read.
func sendWithFile(c *net.UnixConn, resp Response, f *os.File) error {
	c.SetWriteDeadline(time.Now().Add(clientWriteTimeout))
	defer c.SetWriteDeadline(time.Time{})
	line, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if f == nil {
		_, err = c.Write(line)
		return err
	}
	defer f.Close()
	_, _, err = c.WriteMsgUnix(line, unix.UnixRights(int(f.Fd())), nil)
	return err
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// exitStatus is a wait status as a shell gives it: 128+N for signal N.
func exitStatus(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// exec starts the command of r in u's running container and answers with
// its pid and how its exit arrives. The supervisor loop only reads u; the
// start itself runs on a goroutine of its own, as a health check's does:
// a process of the container may stop the command's child before its
// execve (SIGSTOP to every other process it sees), and container.Exec
// then waits up to its start timeout, which must not hold the loop (no
// request answered, no container started or stopped, no SIGTERM taken).
func (s *supervisor) exec(u *unit, r request) {
	fail := func(code int, msg string) {
		r.reply <- reply{Response: Response{Error: msg, ExitCode: &code}}
	}
	if u.c == nil {
		fail(ExecNotRunning, fmt.Sprintf("container %s is not running (%s)", u.name, u.describeState()))
		return
	}
	opts := container.ExecOptions{Args: r.Exec.Args, Env: r.Exec.Env, Cwd: r.Exec.Workdir, TTY: r.Exec.TTY,
		Rows: r.Exec.Rows, Cols: r.Exec.Cols, ExternalReaper: true}
	if r.Exec.User != "" {
		user, err := container.ParseUser(r.Exec.User)
		if err != nil {
			fail(125, "exec: "+err.Error())
			return
		}
		opts.User = &user
	}
	if len(r.files) == 3 {
		opts.Stdin, opts.Stdout, opts.Stderr = r.files[0], r.files[1], r.files[2]
	}
	c, name := u.c, u.name
	s.b.goSafe(func() { s.startExec(c, name, opts, r.reply) })
}

// startExec starts opts in the container c (the unit name's) and replies
// with the command's pid and how its exit arrives, or why it did not
// start. serveExec keeps the command's stdio open until the reply.
func (s *supervisor) startExec(c *container.Container, name string, opts container.ExecOptions, replies chan<- reply) {
	fail := func(code int, msg string) {
		replies <- reply{Response: Response{Error: msg, ExitCode: &code}}
	}
	p, exited, err := s.execReaped(c, opts)
	var se *container.StartError
	var pe *safe.PanicError
	switch {
	case errors.As(err, &pe):
		s.b.log.Printf("container %s: exec %s: %v", name, opts.Args[0], err)
		fail(125, fmt.Sprintf("container %s: %s: internal error (panic: %v), logged by berth", name, pe.Op, pe.Value))
		return
	case errors.Is(err, container.ErrNotRunning):
		fail(ExecNotRunning, fmt.Sprintf("container %s is not running", name))
		return
	case errors.As(err, &se):
		fail(se.Code, fmt.Sprintf("container %s: %v", name, err))
		return
	case err != nil:
		fail(125, fmt.Sprintf("container %s: %v", name, err))
		return
	}
	p.Pidfd.Close()
	s.b.log.Printf("container %s: exec %s: pid %d", name, opts.Args[0], p.Pid)
	replies <- reply{Response: Response{ExecPid: p.Pid}, pty: p.PTY, exited: exited}
}

// execReaped runs container.Exec of opts in c under the reaper, which owns
// the child from its clone on (startCloned), and returns the process and
// the channel its exit status arrives on. A panic in the exec's start is
// a *safe.PanicError: that exec fails (container.Exec kills a child it
// had cloned), the reaper's count of starts under way is kept right, and
// PID 1 goes on.
func (s *supervisor) execReaped(c *container.Container, opts container.ExecOptions) (*container.Process, chan syscall.WaitStatus, error) {
	exited := make(chan syscall.WaitStatus, 1)
	var p *container.Process
	err := s.b.reaper.startCloned(func(cloned func(int)) (pid int, err error) {
		defer safe.Recover("exec: start", &err)
		opts.Cloned = cloned
		if execStartHook != nil {
			execStartHook()
		}
		if p, err = c.Exec(opts); err != nil {
			return 0, err
		}
		return p.Pid, nil
	}, func(ws syscall.WaitStatus) { exited <- ws })
	return p, exited, err
}

// execStartHook, when set (tests), runs in execReaped before the exec.
var execStartHook func()
