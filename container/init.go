package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"berth/container/seccomp"
)

// Init is the init of a user-namespaced container: berth re-executed by
// Start inside the new namespaces. It reads its config from fd 3, builds the root filesystem,
// drops privileges and execs the workload. Any failure is written to fd 4
// as "CODE message" and ends the process with CODE; Init never returns.
//
// The caller must have locked the main goroutine to its thread: the
// cgroup namespace, capabilities, no_new_privs and seccomp set here are
// per thread, and this thread calls execve.
func Init() {
	err := runInit()
	code := 125
	var se *StartError
	if errors.As(err, &se) {
		code = se.Code
	}
	errPipe := os.NewFile(initErrorFd, "error pipe")
	fmt.Fprintf(errPipe, "%d %v", code, err)
	os.Exit(code)
}

func runInit() error {
	// 1. Nobody may ptrace us or open our /proc files until the workload
	// runs: until then this process is berth, not the workload.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("set non-dumpable: %w", err)
	}
	trace("init-start")

	// 2. Read the config.
	cfg, err := readInitConfig()
	if err != nil {
		return err
	}
	spec := cfg.Spec

	// 3. Build the root filesystem in our mount namespace.
	root, err := setupRootfs(cfg, receivedMounts(cfg), fsopen)
	if err != nil {
		return err
	}
	defer root.close()
	trace("rootfs")

	// 4. Name the host; in our own network namespace bring up loopback
	// and, on a bridge, eth0 with its address and default route.
	if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
		return fmt.Errorf("set hostname %q: %w", spec.Hostname, err)
	}
	if spec.Net != "host" {
		if err := netUp(cfg.Net); err != nil {
			return err
		}
		trace("net-up")
	}

	// 5. Switch to the new root and detach the old one.
	if err := root.pivotRoot(); err != nil {
		return err
	}
	if spec.ReadonlyRoot {
		if err := setReadonly(root.root, false); err != nil {
			return fmt.Errorf("root: %w", err)
		}
	}
	trace("pivot")

	// 6. Join the container's cgroup, under a cgroup namespace rooted
	// there, and mount it at /sys/fs/cgroup. From here on the container's
	// limits apply to us.
	if err := joinCgroup(cfg, root); err != nil {
		return err
	}

	// 7–8: the process's own set-up.
	ruleset, cwd, err := prepareProcess(cfg, root)
	if err != nil {
		return err
	}
	// 9–15: confinement, credentials, exec.
	return becomeWorkload(cfg, ruleset, cwd)
}

// prepareProcess makes Landlock's ruleset over the finished tree (-1:
// none), also handed to berth for the container's execs, the terminal,
// the process limits and the working directory (returned), while berth
// still holds its privileges.
func prepareProcess(cfg initConfig, root *rootMounter) (ruleset int, cwd string, err error) {
	spec := cfg.Spec
	// Landlock's ruleset, over the finished tree.
	ruleset = -1
	if spec.Landlock != nil {
		if ruleset, err = landlockRuleset(spec.Landlock, int(root.root.Fd())); err != nil {
			return -1, "", err
		}
		if err := sendRuleset(cfg.LandlockFd, ruleset); err != nil {
			return -1, "", err
		}
	}

	// 7. A terminal of the container's own devpts, when asked for.
	if spec.TTY {
		if err := setupPTY(cfg); err != nil {
			return -1, "", err
		}
	}

	// 8. Process limits, while we still may raise them.
	if err := setRlimits(spec.Rlimits); err != nil {
		return -1, "", err
	}
	if spec.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(fmt.Sprint(*spec.OOMScoreAdj)), 0); err != nil {
			return -1, "", fmt.Errorf("set oom_score_adj %d: %w", *spec.OOMScoreAdj, err)
		}
	}
	cwd = spec.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := makeWorkdir(cwd); err != nil {
		return -1, "", err
	}

	return ruleset, cwd, nil
}

// becomeWorkload confines the process, takes the workload's
// credentials and executes it; it returns only on failure.
func becomeWorkload(cfg initConfig, ruleset int, cwd string) error {
	spec := cfg.Spec
	// 9. Without no_new_privs, the security modules and seccomp must go on while we
	// still hold CAP_SYS_ADMIN; otherwise they go on last.
	if spec.AllowNewPrivileges {
		if err := confine(spec, ruleset); err != nil {
			return err
		}
		if cfg.Seccomp != nil {
			if err := seccomp.InstallFlags(cfg.Seccomp, cfg.SeccompFlags); err != nil {
				return fmt.Errorf("install seccomp filter: %w", err)
			}
		}
	}

	// 10. Become the workload's user with its capabilities.
	if err := setCredentials(spec.User, cfg.Caps); err != nil {
		return err
	}
	trace("creds")

	// 11. Enter the working directory and check it is inside the root:
	// a leaked directory fd would show as "(unreachable)" (CVE-2024-21626).
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("chdir to working directory %s: %w", cwd, err)
	}
	if wd, err := unix.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		return fmt.Errorf("working directory %q is outside the container's root", wd)
	}

	// 12. Find the command as the workload's user would.
	env, path := workloadEnv(spec.Env)
	bin, err := lookPath(spec.Args[0], path)
	if err != nil {
		return err
	}

	// 13. No fd of ours may reach the workload.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("mark fds close-on-exec: %w", err)
	}

	// 14. no_new_privs, then the security modules (Landlock's system
	// calls seccomp's default profile would refuse), then seccomp, last
	// before exec.
	if !spec.AllowNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("set no_new_privs: %w", err)
		}
		if err := confine(spec, ruleset); err != nil {
			return err
		}
		if cfg.Seccomp != nil {
			if err := seccomp.InstallFlags(cfg.Seccomp, cfg.SeccompFlags); err != nil {
				return fmt.Errorf("install seccomp filter: %w", err)
			}
		}
	}
	trace("seccomp")

	// 15. Exec the workload, or the tiny init that starts it, with
	// signals 32 and 34 at their default: berth boot ignores them for
	// itself, and an ignored signal stays ignored across execve.
	setLibcSignals(sigDFL)
	traceRSS("init")
	trace("exec")
	if spec.Init {
		return execTinyInit(cfg)
	}
	err = unix.Exec(bin, spec.Args, env)
	code := 126
	if errors.Is(err, unix.ENOENT) {
		code = 127
	}
	return &StartError{code, fmt.Errorf("exec %s: %w%s", spec.Args[0], err, execHint(spec, err))}
}

// confine sets the exec transitions of AppArmor and SELinux, then
// Landlock's ruleset (-1: none), on the calling thread.
func confine(spec Spec, ruleset int) error {
	if err := setExecAttrs(spec); err != nil {
		return err
	}
	return landlockRestrict(ruleset)
}

// execTinyInit execs the tiny init in the workload's place, handing it
// the error pipe, which it closes once the workload runs.
func execTinyInit(cfg initConfig) error {
	if _, err := unix.FcntlInt(initErrorFd, unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("exec berth's init: error pipe: %w", err)
	}
	argv, env := tinyInitArgv(cfg.Spec, tinyErrText, initErrorFd)
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return fmt.Errorf("exec berth's init: %w", err)
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return fmt.Errorf("exec berth's init: %w", err)
	}
	empty := []byte{0}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(cfg.InitExeFd), uintptr(unsafe.Pointer(&empty[0])),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	if errno == unix.ENOENT { // the file is there: what is missing is its loader
		return fmt.Errorf("exec berth's init: %w: berth is dynamically linked, and the container has no loader for it: build berth with CGO_ENABLED=0", errno)
	}
	return fmt.Errorf("exec berth's init: %w", errno)
}

// joinCgroup moves the init into the container's cgroup, enters a new
// cgroup namespace rooted there and mounts that view read-only at
// /sys/fs/cgroup. Until now the init ran outside: the Go runtime's
// threads and heap must not count against a limit as small as pids.max=1
// or a memory.max of a few hundred KiB. The kernel charges a migrating
// process to its new cgroup without checking pids.max, and the extra
// threads vanish at execve. The write is a raw system call, so the Go
// scheduler starts no thread for it.
func joinCgroup(cfg initConfig, root *rootMounter) error {
	zero := []byte("0")
	for _, fd := range cfg.CgroupFds {
		_, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&zero[0])), 1)
		if errno != 0 {
			return fmt.Errorf("join cgroup of %s: %w", cfg.Spec.Name, errno)
		}
		unix.Close(fd)
	}
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("unshare cgroup namespace: %w", err)
	}
	return root.mountCgroups(cfg)
}

func readInitConfig() (initConfig, error) {
	var cfg initConfig
	f := os.NewFile(initConfigFd, "config pipe")
	data, err := io.ReadAll(io.LimitReader(f, 4<<20))
	f.Close()
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, fmt.Errorf("decode config: %w", err)
	}
	return cfg, nil
}

// setCredentials switches to u and leaves exactly caps in the bounding,
// permitted and effective sets. The bounding set is cut while we still
// hold CAP_SETPCAP; PR_SET_KEEPCAPS keeps the permitted set across the
// uid change so the remaining capabilities can be raised afterwards.
func setCredentials(u User, caps []string) error {
	if err := dropBounding(caps); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("keep capabilities: %w", err)
	}
	groups := make([]int, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("set groups %v: %w", u.Groups, err)
	}
	if err := syscall.Setresgid(int(u.GID), int(u.GID), int(u.GID)); err != nil {
		return fmt.Errorf("set gid %d: %w", u.GID, err)
	}
	if err := syscall.Setresuid(int(u.UID), int(u.UID), int(u.UID)); err != nil {
		return fmt.Errorf("set uid %d: %w", u.UID, err)
	}
	if err := applyCaps(caps); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("clear keep capabilities: %w", err)
	}
	return nil
}

// workloadEnv returns the workload's environment, with PATH defaulted,
// and the PATH to look the command up in.
func workloadEnv(env []string) ([]string, string) {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			return env, v
		}
	}
	return append(env[:len(env):len(env)], "PATH="+DefaultPath), DefaultPath
}

// lookPath finds name in path inside the container's root, as a shell would.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if err := checkExecutable(name); err != nil {
			return "", execError(name, err)
		}
		return name, nil
	}
	var firstErr error
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		if firstErr == nil && !errors.Is(err, os.ErrNotExist) {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", execError(name, firstErr)
	}
	return "", &StartError{127, fmt.Errorf("exec %s: not found in PATH %s", name, path)}
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return unix.EACCES
	}
	return unix.Access(p, unix.X_OK)
}

func execError(name string, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return &StartError{127, fmt.Errorf("exec %s: no such file", name)}
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &StartError{126, fmt.Errorf("exec %s: %w", name, err)}
}

// loopbackUp sets the IFF_UP flag on lo.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	return nil
}
