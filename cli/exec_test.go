package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/boot"
)

// execConfig runs the containers berth exec is tried on: the defaults,
// a user namespace, a read-only root, a oneshot that has exited, and a
// management container with the control socket and berth bind-mounted.
const execConfig = `
[[container]]
name = "web"
image = "bb.tar.zst"
hostname = "webhost"
env = ["A=1", "B=1"]
command = ["sleep", "1000"]
stop_timeout = "1s"
[container.limits]
pids = 16

[[container]]
name = "ns"
image = "bb.tar.zst"
user_ns = true
command = ["sleep", "1000"]
stop_timeout = "1s"

[[container]]
name = "ro"
image = "bb.tar.zst"
readonly_root = true
command = ["sleep", "1000"]
stop_timeout = "1s"

[[container]]
name = "job"
image = "bb.tar.zst"
oneshot = true
command = ["true"]

[[container]]
name = "admin"
image = "bb.tar.zst"
command = ["sleep", "1000"]
stop_timeout = "1s"
[[container.mount]]
source = "SOCKET"
target = "/run/berth.sock"
[[container.mount]]
source = "BERTH"
target = "/bin/berth"
readonly = true
`

// bootForExec runs berth boot with execConfig until the test ends and
// returns its directory and pid.
func bootForExec(t *testing.T) (string, int) {
	dir := t.TempDir()
	packBusybox(t, dir)
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, strings.NewReplacer("SOCKET", filepath.Join(dir, "berth.sock"), "BERTH", berthBin).Replace(execConfig))
	log, cmd := bootInDir(t, dir, cfg)
	waitFor(t, "the containers to run", log, func() bool {
		_, out, _ := berth(t, "ps")
		return strings.Count(out, "running") == 4 && strings.Contains(out, "exited")
	})
	return dir, cmd.Process.Pid
}

// berthIn runs berth with stdin and returns its status and output.
func berthIn(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(berthBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("berth %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// TestExecVerb drives berth exec as a user would: what the command sees
// in each kind of container, its flags, its stdin, its exit statuses,
// and from a management container over the bind-mounted socket.
func TestExecVerb(t *testing.T) {
	dir, bootPid := bootForExec(t)
	// What the command sees: the container's hostname and PID namespace
	// (PID 1 is its sleep), its cgroup, its first process's capability
	// sets, no_new_privs and seccomp, and one filter more (the clone
	// guard); not berth's pid nor the host's files; only its stdio.
	script := fmt.Sprintf(`hostname; cat /proc/1/comm
		grep -qx $$ /sys/fs/cgroup/pids/cgroup.procs && echo in-cgroup
		a=$(grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/1/status); b=$(grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status)
		[ "$a" = "$b" ] && echo same-confinement; echo "$b" | grep -q '^Seccomp:.2$' && echo seccomp-filter
		fa=$(grep Seccomp_filters /proc/1/status | cut -f2); fb=$(grep Seccomp_filters /proc/self/status | cut -f2)
		[ "$fb" = $((fa + 1)) ] && echo clone-guard
		test -e /proc/%d || echo no-host-pid; test -e %s || echo no-host-path
		echo fds $(ls /proc/self/fd)`, bootPid, filepath.Join(dir, "berth.toml"))
	for name, host := range map[string]string{"web": "webhost", "ns": "ns", "ro": "ro"} {
		status, out := berthIn(t, "", "exec", name, "--", "sh", "-c", script)
		want := host + "\nsleep\nin-cgroup\nsame-confinement\nseccomp-filter\nclone-guard\nno-host-pid\nno-host-path\nfds 0 1 2 3\n"
		if status != 0 || out != want {
			t.Errorf("berth exec %s: status %d\n%s\nwant\n%s", name, status, out, want)
		}
	}
	for _, tc := range []struct {
		args   []string
		stdin  string
		status int
		out    string
	}{
		{[]string{"-e", "B=2", "--env", "C=3", "--user", "7:8", "--workdir", "/etc", "web", "--", "sh", "-c", "echo $A $B $C; id -u; id -g; pwd"}, "", 0, "1 2 3\n7\n8\n/etc\n"},
		{[]string{"web", "cat"}, "through stdin\n", 0, "through stdin\n"},
		{[]string{"web", "--", "sh", "-c", "exit 3"}, "", 3, ""},
		{[]string{"web", "--", "sh", "-c", "kill -9 $$"}, "", 137, ""},
		{[]string{"web", "--", "nosuch"}, "", 127, "berth: container web: exec nosuch: not found in PATH"},
		{[]string{"web", "--", "/etc/passwd"}, "", 126, "berth: container web: exec /etc/passwd: permission denied"},
		{[]string{"--workdir", "/nosuch", "web", "--", "true"}, "", 125, "berth: container web: chdir to working directory /nosuch: no such file"},
		{[]string{"job", "--", "true"}, "", 124, "berth: container job is not running (exited (status 0))"},
		{[]string{"nosuch", "--", "true"}, "", 125, `berth: no container "nosuch"`},
		{[]string{"--user", "nobody", "web", "--", "true"}, "", 2, "berth exec: --user: invalid user"},
		{[]string{"-e", "X", "web", "--", "true"}, "", 2, "berth exec: -e: invalid entry"},
		{[]string{"web"}, "", 2, "berth exec: missing CMD"},
		{[]string{"--workdir", "rel", "web", "--", "pwd"}, "", 2, "berth exec: --workdir: want an absolute path without \"..\", got \"rel\""},
		{[]string{"--workdir", "/a/../b", "web", "--", "pwd"}, "", 2, "berth exec: --workdir: want an absolute path"},
		// From a management container: its berth over the bind-mounted socket.
		{[]string{"admin", "--", "berth", "exec", "web", "--", "sh", "-c", "hostname; exit 5"}, "", 5, "webhost\n"},
	} {
		status, out := berthIn(t, tc.stdin, append([]string{"exec"}, tc.args...)...)
		if status != tc.status || !strings.HasPrefix(out, tc.out) {
			t.Errorf("berth exec %q: status %d, output %q; want %d, %q", tc.args, status, out, tc.status, tc.out)
		}
	}
}

// TestExecStop: an exec'd command ends with its container, and berth
// exec then says the container is not running.
func TestExecStop(t *testing.T) {
	bootForExec(t)
	cmd := exec.Command(berthBin, "exec", "web", "--", "sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the exec'd sleep", &bootLog{}, func() bool {
		_, out := berthIn(t, "", "exec", "web", "--", "sh", "-c", "ps -o comm | grep -c sleep")
		return out == "2\n"
	})
	if status, out, _ := berth(t, "stop", "-t", "0", "web"); status != 0 {
		t.Fatalf("stop: %s", out)
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 137 {
		t.Errorf("berth exec of a command whose container stopped: %d, want 137", code)
	}
	if status, out := berthIn(t, "", "exec", "web", "--", "true"); status != 124 || !strings.Contains(out, "container web is not running (stopped)") {
		t.Errorf("exec into a stopped container: %d %q", status, out)
	}
}

// TestExecTerminal runs berth exec -t on a real terminal: the command's
// is a new one of the container's devpts, of this one's size, and
// follows its size after SIGWINCH.
func TestExecTerminal(t *testing.T) {
	bootForExec(t)
	master, slave := openHostPTY(t)
	defer master.Close()
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 77}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(berthBin, "exec", "-t", "web", "--", "sh", "-c", "tty; while :; do stty size; read x || exit 0; done")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	out := &bootLog{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	waitFor(t, "the first size", &bootLog{}, func() bool { return strings.Contains(out.String(), "33 77") })
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 90}); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGWINCH)
	waitFor(t, "the new size", &bootLog{}, func() bool {
		master.Write([]byte("\r"))
		time.Sleep(50 * time.Millisecond)
		return strings.Contains(out.String(), "40 90")
	})
	master.Write([]byte{4}) // ^D: read fails, the shell exits 0
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(out.String(), "/dev/pts/0") {
		t.Errorf("berth exec -t: status %d, output %q", code, out.String())
	}
}

// openHostPTY opens a terminal of the host's devpts.
func openHostPTY(t *testing.T) (master, slave *os.File) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY)
	if errno != 0 {
		t.Fatal(errno)
	}
	return m, os.NewFile(fd, "pty slave")
}

// TestExecRefusesHostHandles: the control socket refuses an exec whose
// handed stdio is a directory or an O_PATH handle (a way out of the
// container's root, CVE-2024-21626), a file, a terminal, a device other
// than /dev/null or a named FIFO (which a process of the container could
// reopen through /proc/PID/fd of the command), a socket (a listening one
// of the host's network here), or that brings more fds than stdio. Pipes
// and /dev/null are taken.
func TestExecRefusesHostHandles(t *testing.T) {
	dir, _ := bootForExec(t)
	sock := filepath.Join(dir, "berth.sock")
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	pathFd, err := unix.Open(filepath.Join(dir, "berth.toml"), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := os.NewFile(uintptr(pathFd), "O_PATH")
	defer p.Close()
	open := func(path string, flag int) *os.File {
		f, err := os.OpenFile(path, flag, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	null, zero, file := open(os.DevNull, os.O_RDWR), open("/dev/zero", os.O_RDONLY), open(filepath.Join(dir, "berth.toml"), os.O_RDONLY)
	master, slave := openHostPTY(t)
	defer master.Close()
	defer slave.Close()
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := open(filepath.Join(dir, "fifo"), os.O_RDWR)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sockEnd, sockOther := os.NewFile(uintptr(pair[0]), "socketpair"), os.NewFile(uintptr(pair[1]), "socketpair")
	defer sockEnd.Close()
	defer sockOther.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	listening, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer listening.Close()
	req := boot.Request{Verb: "exec", Name: "web", Exec: &boot.ExecRequest{Args: []string{"true"}}}
	for _, tc := range []struct {
		stdio []*os.File
		want  string
	}{
		{[]*os.File{null, d, null}, "fd 1: a directory cannot be stdio"},
		{[]*os.File{p, null, null}, "fd 0: an O_PATH handle cannot be stdio"},
		{[]*os.File{file, null, null}, "fd 0: a file cannot be stdio: the container could reopen it for writing"},
		{[]*os.File{null, slave, null}, "fd 1: a terminal or device cannot be stdio"},
		{[]*os.File{null, null, zero}, "fd 2: a terminal or device cannot be stdio"},
		{[]*os.File{fifo, null, null}, "fd 0: a named FIFO cannot be stdio"},
		{[]*os.File{null, sockEnd, null}, "fd 1: a socket cannot be stdio"},
		{[]*os.File{listening, null, null}, "fd 0: a socket cannot be stdio"},
		{[]*os.File{null, null}, "want 3 fds"},
		{[]*os.File{null, null, null, null}, "bad request: more than 3 fds"},
	} {
		code, err := boot.Exec(sock, req, tc.stdio, func(boot.Response, *os.File) { t.Error("the command started") })
		if code != 125 || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("exec with %d fds: %d %v, want 125 and %q", len(tc.stdio), code, err, tc.want)
		}
	}
	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	defer w.Close()
	if code, err := boot.Exec(sock, req, []*os.File{null, w, null}, func(boot.Response, *os.File) {}); code != 0 || err != nil {
		t.Errorf("exec with a pipe and /dev/null: %d %v", code, err)
	}
}

// TestExecStdioRelayed: berth exec hands the command pipes, not its own
// files. Here the command (as a process of the container could, through
// /proc/PID/fd) reopens its stdin, a host file given only as input, for
// writing, and its stdout, the operator's terminal, for reading: the
// file is unchanged, the terminal is not reached, and the command's
// input and output are copied as before.
func TestExecStdioRelayed(t *testing.T) {
	dir, _ := bootForExec(t)
	victim := filepath.Join(dir, "victim")
	write(t, victim, "original\n")
	in, err := os.Open(victim)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	master, slave := openHostPTY(t)
	defer master.Close()
	defer slave.Close()
	cmd := exec.Command(berthBin, "exec", "web", "--", "sh", "-c",
		`cat; echo pwned > /proc/self/fd/0; for f in 0 1; do readlink /proc/$$/fd/$f | cut -d: -f1; done; echo done >&2`)
	cmd.Env = append(os.Environ(), "BERTH_SOCKET="+filepath.Join(dir, "berth.sock"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, slave, slave
	if err := cmd.Run(); err != nil {
		t.Fatalf("berth exec: %v", err)
	}
	slave.Close()
	out, _ := io.ReadAll(master) // EIO once the slave is closed
	if got, _ := os.ReadFile(victim); string(got) != "original\n" {
		t.Errorf("the host file given as stdin now holds %q", got)
	}
	if o := strings.ReplaceAll(string(out), "\r", ""); o != "original\npipe\npipe\ndone\n" {
		t.Errorf("the terminal got %q, want the command's output through pipes", o)
	}
}

// TestExecRelay: berth exec's copying of the command's stdio keeps what
// handing its own files gave: a terminal's input is left to the
// terminal (the command gets an end of file; typed input is not eaten,
// and berth exec in the background is not stopped for reading it);
// stdout and stderr that are one file keep their order; berth exec ends
// even if a process the command left keeps writing; and a reader that
// goes away fails the command's writes, not berth exec, which still
// reports the command's status and stderr.
func TestExecRelay(t *testing.T) {
	dir, _ := bootForExec(t)
	sock := "BERTH_SOCKET=" + filepath.Join(dir, "berth.sock")
	command := func(args ...string) *exec.Cmd {
		cmd := exec.Command(berthBin, append([]string{"exec", "web", "--"}, args...)...)
		cmd.Env = append(os.Environ(), sock)
		return cmd
	}

	master, slave := openHostPTY(t)
	defer master.Close()
	defer slave.Close()
	master.Write([]byte("typed\n"))
	cmd := command("sh", "-c", "cat; echo cat-ended")
	var out bytes.Buffer
	cmd.Stdin, cmd.Stdout = slave, &out
	if err := cmd.Run(); err != nil || out.String() != "cat-ended\n" {
		t.Errorf("stdin a terminal: %v, %q", err, out.String())
	}
	slave.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(slave).ReadString('\n'); line != "typed\n" {
		t.Errorf("what was typed before: %q %v", line, err)
	}

	f, err := os.Create(filepath.Join(dir, "both"))
	if err != nil {
		t.Fatal(err)
	}
	cmd = command("sh", "-c", "for i in 1 2 3 4 5 6; do echo out$i; echo err$i >&2; done")
	cmd.Stdout, cmd.Stderr = f, f
	err = cmd.Run()
	f.Close()
	want := "out1\nerr1\nout2\nerr2\nout3\nerr3\nout4\nerr4\nout5\nerr5\nout6\nerr6\n"
	if got, _ := os.ReadFile(filepath.Join(dir, "both")); err != nil || string(got) != want {
		t.Errorf("2>&1: %v, %q", err, got)
	}

	cmd = command("sh", "-c", "(while :; do echo x; usleep 20000; done) & echo started")
	cmd.Stdout = &out
	done := make(chan error, 1)
	go func() { done <- cmd.Run() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("a writer left behind: %v", err)
		}
	case <-time.After(30 * time.Second): // a hang guard
		cmd.Process.Kill()
		t.Error("berth exec did not end while a process it left kept writing")
	}

	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd = command("sh", "-c", "seq 1000000; echo after >&2; exit 3")
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if line, _ := bufio.NewReader(rd).ReadString('\n'); line != "1\n" {
		t.Errorf("the first line: %q", line)
	}
	rd.Close() // as head -1 does
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 3 || stderr.String() != "after\n" {
		t.Errorf("a reader gone: status %d, stderr %q; want 3, \"after\"", code, stderr.String())
	}
}
