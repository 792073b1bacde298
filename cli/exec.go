package cli

import (
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"berth/boot"
	"berth/container"
)

const execAbout = `Runs CMD in the running container NAME with exactly its confinement: its
namespaces, cgroup, root, capabilities, no_new_privs, seccomp filter and
rlimits, its environment (then each -e), its user and working directory
unless --user or --workdir say otherwise. The command's stdin, stdout and
stderr are pipes that this process copies from its own and to its own
(the container never gets a handle to a file or terminal of the host's;
a terminal is not copied to stdin: use -t); once the command has exited,
its output is copied until it has been quiet for 100ms, 2s at most. With -t, a new terminal of the
container's devpts instead, which this terminal drives (raw, following its
window size), and TERM set (from -e, this process's own, or xterm). Exit status: CMD's, 128+N when signal N killed it, 124 when
NAME is not running, 125 when berth cannot be reached or cannot start CMD,
126 when CMD cannot be executed, 127 when it is not found, 2 for bad flags.`

// execMain is `berth exec`.
func execMain(c *ctx, args []string) int {
	cmd := c.command("exec", "[-t] [-e K=V]... [--user UID[:GID]] [--workdir DIR] NAME -- CMD [ARG...]", execAbout)
	tty := cmd.fs.Bool("t", false, "give CMD a terminal of the container's own, driven by this one")
	env := listFlag{}
	cmd.fs.Var(&env, "e", "environment variable K=V, over the container's (repeatable)")
	cmd.fs.Var(&env, "env", "same as -e")
	user := cmd.fs.String("user", "", "UID[:GID] to run as (numeric; default the container's user)")
	workdir := cmd.fs.String("workdir", "", "working directory (default the container's)")
	socket := cmd.fs.String("socket", boot.SocketPath(), "berth's control `SOCKET` (or $BERTH_SOCKET)")
	pos, rest, status := cmd.parseUntil(args, 1)
	if status >= 0 {
		return status
	}
	if len(pos) == 0 {
		return cmd.fail("missing NAME and CMD")
	}
	cmdArgs := rest
	if len(rest) > 0 && rest[0] != "--" {
		more, tail, status := cmd.parseUntil(rest, 1)
		if status >= 0 {
			return status
		}
		cmdArgs = append(more, tail...)
	} else if len(rest) > 0 {
		cmdArgs = rest[1:]
	}
	if len(cmdArgs) == 0 || cmdArgs[0] == "" {
		return cmd.fail("missing CMD")
	}
	for _, kv := range env.vals {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return cmd.fail("-e: invalid entry %s: want K=V", container.Quote(kv))
		}
	}
	if *user != "" {
		if _, err := container.ParseUser(*user); err != nil {
			return cmd.fail("--user: %v", err)
		}
	}
	if *workdir != "" {
		if err := container.CheckWorkdir(*workdir); err != nil {
			return cmd.fail("--workdir: %v", err)
		}
	}
	if *tty {
		env.vals = withTerm(env.vals)
	}
	req := boot.Request{Verb: "exec", Name: pos[0], Exec: &boot.ExecRequest{
		Args: cmdArgs, Env: env.vals, User: *user, Workdir: *workdir, TTY: *tty,
	}}
	return c.exec(*socket, req)
}

// exec sends req and relays a terminal when it has one.
func (c *ctx) exec(socket string, req boot.Request) int {
	out, _ := c.stdout.(*os.File)
	var stdio []*os.File
	var rel *relay
	if !req.Exec.TTY {
		var err error
		if rel, err = newRelay(c.stdin, c.stdout, c.stderr); err != nil {
			c.errorf("exec: %v", err)
			return 125
		}
		stdio = rel.child
	} else if ws, err := unix.IoctlGetWinsize(int(c.stdin.Fd()), unix.TIOCGWINSZ); err == nil {
		req.Exec.Rows, req.Exec.Cols = ws.Row, ws.Col
	}
	var term *terminal
	winch := make(chan os.Signal, 1)
	code, err := boot.Exec(socket, req, stdio, func(_ boot.Response, pty *os.File) {
		if rel != nil {
			rel.started()
		}
		if pty == nil {
			return
		}
		if out == nil {
			out = os.Stdout
		}
		term = attachTerminal(pty, c.stdin, out)
		signal.Notify(winch, syscall.SIGWINCH)
		go func() {
			for range winch {
				term.resize()
			}
		}()
	})
	if term != nil {
		signal.Stop(winch)
		close(winch)
		term.restore()
	}
	if rel != nil {
		rel.finish()
	}
	if err != nil {
		c.errorf("%v", err)
	}
	return code
}
