package container

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// With Spec.Init, a container's first process is not its workload but a
// tiny init, as docker's --init (tini) is: it forwards every signal it
// gets to the workload, reaps every process the container orphans, and
// ends with the workload's status (128+N when signal N ended it). A shell
// or a web server as PID 1 ignores SIGTERM; the workload under the init
// gets it with its default action.
//
// The init is berth itself, run from one memfd copy of its binary sealed
// against every change (F_SEAL_WRITE, SHRINK, GROW, SEAL), made once per
// berth process and shared by all its containers' inits: the container's
// /proc/1/exe is that copy, never berth's file on the host (the
// CVE-2019-5736 class). It is exec'd as the workload's last step would
// have exec'd the workload — with the workload's user, capabilities,
// no_new_privs and seccomp filter — and it makes itself non-dumpable
// first, so the workload cannot open its /proc files (exe, mem, environ)
// nor ptrace it without CAP_SYS_PTRACE. It gets the workload's candidate
// paths and arguments in its argv and the workload's environment as its
// own, and runs its Go runtime on one P.

// TinyInitArg is argv[1] of berth run as a container's tiny init.
const TinyInitArg = "__container-tiny-init"

// Error pipe formats of the tiny init: a direct start's binary record,
// or the re-executed init's "CODE message".
const (
	tinyErrRecord = "r"
	tinyErrText   = "t"
)

var tinyExe struct {
	once sync.Once
	file *os.File
	err  error
}

// tinyInitExe returns the sealed memfd copy of berth the tiny init runs
// from, made on first use, at fd highFd or above.
func tinyInitExe() (*os.File, error) {
	tinyExe.once.Do(func() {
		f, err := sealedCopy()
		if err != nil {
			tinyExe.err = err
			return
		}
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, highFd)
		f.Close()
		if err != nil {
			tinyExe.err = fmt.Errorf("init binary: %w", err)
			return
		}
		tinyExe.file = os.NewFile(uintptr(fd), "berth init (sealed)")
	})
	return tinyExe.file, tinyExe.err
}

// tinyInitArgv is the tiny init's argv: TinyInitArg, the error format
// and pipe, the number of candidate paths, the paths, the number of
// arguments, then the arguments; and its environment, the workload's
// (in its argv it would show in /proc/1/cmdline, which the container's
// every user may read).
func tinyInitArgv(spec Spec, errFormat string, errFd int) (argv, env []string) {
	env, path := workloadEnv(spec.Env)
	paths := execCandidates(spec.Args[0], path)
	argv = append([]string{"berth-init", TinyInitArg, errFormat, strconv.Itoa(errFd), strconv.Itoa(len(paths))}, paths...)
	return append(append(argv, strconv.Itoa(len(spec.Args))), spec.Args...), env
}

// execInit execs the tiny init in the workload's place (see above),
// handing it the error pipe, which it closes once the workload runs.
//
//go:nosplit
//go:norace
//go:nocheckptr
func (k *childPlan) execInit() (int, syscall.Errno) {
	if _, _, e := syscall.RawSyscall(unix.SYS_FCNTL, uintptr(k.errPipe), unix.F_SETFD, 0); e != 0 {
		return stepExecInit, e
	}
	_, _, e := syscall.RawSyscall6(unix.SYS_EXECVEAT, uintptr(k.initFd), uintptr(unsafe.Pointer(&k.empty[0])),
		uintptr(unsafe.Pointer(&k.initArgv[0])), uintptr(unsafe.Pointer(&k.initEnvv[0])), unix.AT_EMPTY_PATH, 0)
	return stepExecInit, e
}

// tinyInit is the tiny init's decoded argv.
type tinyInit struct {
	errFormat        string
	errPipe          *os.File
	paths, args, env []string
}

func parseTinyInit(argv []string) (*tinyInit, error) {
	bad := errors.New("berth init: malformed arguments")
	if len(argv) < 7 || argv[1] != TinyInitArg {
		return nil, bad
	}
	t := &tinyInit{errFormat: argv[2], env: os.Environ()}
	fd, err := strconv.Atoi(argv[3])
	if err != nil || fd < 3 {
		return nil, bad
	}
	t.errPipe = os.NewFile(uintptr(fd), "error pipe")
	rest := argv[4:]
	for _, dst := range []*[]string{&t.paths, &t.args} {
		n, err := strconv.Atoi(rest[0])
		if err != nil || n < 1 || n > len(rest)-1 {
			return nil, bad
		}
		*dst, rest = rest[1:1+n], rest[1+n:]
		if len(rest) == 0 && dst == &t.paths {
			return nil, bad
		}
	}
	if len(rest) != 0 {
		return nil, bad
	}
	return t, nil
}

// TinyInit is the tiny init (see above): started by a container's start
// with TinyInitArg, it never returns.
func TinyInit() {
	// 1. Nobody in the container may open our /proc files or ptrace us.
	// One P and a lazy GC keep the init small; the workload's
	// environment, which is ours, does not choose that.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(50)
	t, err := parseTinyInit(os.Args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(125)
	}
	// Nothing but stdio reaches the workload: not the error pipe, whose
	// end berth waits for (every other fd we got is close-on-exec).
	syscall.CloseOnExec(int(t.errPipe.Fd()))
	// 2. Every signal comes to us from here on, before the workload runs.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs)
	// 3. The workload.
	pid, step, err := t.start()
	if err != nil {
		t.fail(step, err)
	}
	t.errPipe.Close()
	os.Exit(t.supervise(pid, sigs))
}

// start starts the workload from the first candidate path that runs, by
// the child's rules (child.go exec): a missing one is skipped, one that
// may not be executed is remembered and skipped, any other failure ends
// the search. On failure it returns the candidate whose error counts.
func (t *tinyInit) start() (int, int, error) {
	// On the terminal that is our controlling one (Spec.TTY), the
	// workload gets a process group of its own in the foreground, so the
	// terminal's signals reach it once, not through us as well.
	sid, err := unix.IoctlGetInt(0, unix.TIOCGSID)
	ctty := err == nil && sid == unix.Getpid()
	attr := &syscall.ProcAttr{Env: t.env, Files: []uintptr{0, 1, 2},
		Sys: &syscall.SysProcAttr{Setpgid: ctty, Foreground: ctty, Ctty: 0}}
	first, firstErr := -1, syscall.Errno(0)
	for i, p := range t.paths {
		pid, err := syscall.ForkExec(p, t.args, attr)
		if err == nil {
			return pid, 0, nil
		}
		var e syscall.Errno
		if !errors.As(err, &e) {
			return 0, i, err
		}
		switch {
		case e == unix.ENOENT || e == unix.ENOTDIR:
			if first < 0 {
				first, firstErr = i, e
			}
		case e == unix.EACCES:
			if first < 0 || firstErr != unix.EACCES {
				first, firstErr = i, e
			}
		default:
			return 0, i, e
		}
	}
	if first < 0 {
		first, firstErr = 0, unix.ENOENT
	}
	return 0, first, firstErr
}

// fail reports the workload's failed exec on the error pipe, as the
// process that would have exec'd it does, and ends the init: 127 when
// the command was not found, 126 when it could not be executed.
func (t *tinyInit) fail(candidate int, err error) {
	code := 126
	var errno syscall.Errno
	if errors.As(err, &errno) && (errno == unix.ENOENT || errno == unix.ENOTDIR) {
		code = 127
	}
	if t.errFormat == tinyErrRecord {
		rec := [3]uint32{stepExec, uint32(errno), uint32(candidate)}
		t.errPipe.Write(unsafe.Slice((*byte)(unsafe.Pointer(&rec[0])), unsafe.Sizeof(rec)))
	} else {
		fmt.Fprintf(t.errPipe, "%d exec %s: %v", code, t.args[0], err)
	}
	os.Exit(code)
}

// supervise forwards signals to the workload and reaps every child
// until the workload has ended, and returns its status.
func (t *tinyInit) supervise(pid int, sigs chan os.Signal) int {
	for sig := range sigs {
		s := sig.(syscall.Signal)
		switch s {
		case syscall.SIGURG: // the Go runtime's own preemption signal
			continue
		case syscall.SIGCHLD:
		default:
			_ = syscall.Kill(pid, s)
			continue
		}
		for {
			var ws syscall.WaitStatus
			wpid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.EINTR {
				continue
			}
			if wpid <= 0 {
				break
			}
			if wpid == pid {
				if ws.Signaled() {
					return 128 + int(ws.Signal())
				}
				return ws.ExitStatus()
			}
		}
	}
	return 125
}
