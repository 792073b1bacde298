package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"

	"berth/container/seccomp"
)

// cloneArgs is the kernel's struct clone_args (clone3, Linux 5.3+).
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal uint64
	stack, stackSize, tls, setTID, setTIDSize     uint64
	cgroup                                        uint64
}

// childRlimit is one setrlimit of the workload.
type childRlimit struct {
	resource uintptr
	lim      unix.Rlimit
}

// The steps of the child, as its error record names them (childStep).
const (
	stepPdeathsig = iota + 1
	stepCloseFds
	stepJoinCgroup
	stepCgroupNS
	stepFsopen
	stepHandOver
	stepAwait
	stepRoot
	stepTTY
	stepStdio
	stepRlimit
	stepSeccomp
	stepBounding
	stepKeepCaps
	stepGroups
	stepGID
	stepUID
	stepCaps
	stepAmbient
	stepChdir
	stepCwdOutside
	stepCloexec
	stepNoNewPrivs
	stepExecAttr
	stepLandlock
	stepJoinNS
	stepOOMScore
	stepTimeout
	stepExec
	stepExecInit
	stepSession
	stepCloneGuard
)

// childPlan is everything the child does, prepared by the parent. Fds are
// the child's, which at the clone are berth's own numbers. Every method
// of childPlan runs in the child (TestChildCallsOnlyRawSyscalls checks
// what they call); the parent's side are functions (direct.go).
type childPlan struct {
	// keep are the fds the child keeps, ascending: it closes every other
	// fd it inherited before anything else.
	keep []int32
	// sock is the child's end of the socket to the thread that builds
	// the container's filesystem tree; errPipe, close-on-exec, carries a
	// failure back; rootfd is the container's root mount.
	sock, errPipe, rootfd int32
	pdeathsig             uintptr
	// cgroupTasks are tasks files (v1) the child joins by writing
	// zero, "0", itself (see directFds.open); on v2 it is born in its
	// cgroup.
	cgroupTasks []int32
	zero        [1]byte
	// fsTypes are the filesystems the child opens (fsopen) in its own
	// PID and cgroup namespaces and hands over in one SCM_RIGHTS message
	// (send, whose control data sendOOB holds; fds go at fdsAt).
	fsTypes []*byte
	send    unix.Msghdr
	sendIOV unix.Iovec
	sendOOB []byte
	fdsAt   int
	// recv gets the go-ahead: one byte, and as SCM_RIGHTS a terminal
	// when the workload has one (tty), then Landlock's ruleset when the
	// spec has one (landlock) and the kernel Landlock.
	tty, landlock bool
	ruleset       int32
	recv          unix.Msghdr
	recvIOV       unix.Iovec
	recvBuf       [1]byte
	recvOOB       []byte
	stdio         [3]int32
	rlimits       []childRlimit
	// joining marks the plan of an exec (exec.go): the child joins the
	// namespaces of the process joinFd (a pidfd) names, joinFlags,
	// writes oomValue to oomPath when set and, with ptmx set, opens a
	// terminal there, sized winsize, and sends its master on sock.
	joining   bool
	joinFd    int32
	joinFlags uintptr
	oomPath   *byte
	oomValue  []byte
	ptmx      *byte
	winsize   unix.Winsize
	// seccomp is the filter, nil when unconfined, installed with
	// seccompFlags; early installs it before the credentials change
	// (no_new_privs off). guard, in an exec's plan only, is the clone
	// guard (seccomp.CloneGuard), installed just before it at the same
	// step, whether or not there is a profile.
	seccomp      *unix.SockFprog
	seccompFlags uintptr
	seccompEarly bool
	guard        *unix.SockFprog
	noNewPrivs   bool
	// attrs are the exec transitions of AppArmor and SELinux (lsm.go);
	// attrFS and attrMnt, procMnt check each file written is procfs's own
	// (procAttrOK).
	attrs            []execAttr
	attrFS           unix.Statfs_t
	attrMnt, procMnt unix.Statx_t
	// early confines the child (lsm) before its credentials change,
	// where without no_new_privs it still may; else right after
	// no_new_privs.
	early    bool
	capDrop  []uintptr // capabilities to drop from the bounding set
	capHdr   unix.CapUserHeader
	capData  [2]unix.CapUserData
	groups   []uint32
	uid, gid uintptr
	cwd      *byte
	cwdBuf   [unix.PathMax]byte
	// argv and envv are NUL-terminated; paths are execve's candidates.
	argv, envv []*byte
	paths      []*byte
	// tinyInit, with Spec.Init: the tiny init's binary, initFd, is
	// exec'd with initArgv and initEnvv in the workload's place.
	tinyInit           bool
	initFd             int32
	initArgv, initEnvv []*byte
	empty              [1]byte
	// trace, when tracing, is "berth-trace exec " (traceLen bytes) with
	// room for the stamp's 19 digits and a newline.
	trace    []byte
	traceLen int
	ts       unix.Timespec
	// rec is the error record: step, errno, candidate.
	rec [3]uint32
	// sigDefault and sigIgnore are struct sigaction of SIG_DFL and
	// SIG_IGN (a handler word first, every other field zero on every
	// architecture); sigOld gets a signal's old action; sigmask is the
	// cloning thread's signal mask.
	sigDefault, sigIgnore, sigOld [8]uintptr
	sigmask                       unix.Sigset_t
	// args and pidfd are the parent's clone3 arguments and result;
	// stack is the child's.
	args  cloneArgs
	pidfd int32
	stack []byte
}

// newChildPlan prepares everything the child does (child.go).
func newChildPlan(cfg initConfig, d *directFds, hm *hostMounts, opts Options) (*childPlan, error) {
	spec := cfg.Spec
	k := &childPlan{sock: int32(d.childSock.Fd()), errPipe: int32(d.errW.Fd()), rootfd: int32(hm.rootfs.Fd()), zero: [1]byte{'0'}}
	for i, f := range []*os.File{opts.Stdin, opts.Stdout, opts.Stderr} {
		if f == nil {
			f = d.null
		}
		k.stdio[i] = int32(f.Fd())
	}
	keep := []int32{k.sock, k.errPipe, k.rootfd, k.stdio[0], k.stdio[1], k.stdio[2]}
	if spec.Init {
		f, err := tinyInitExe()
		if err != nil {
			return nil, err
		}
		k.tinyInit, k.initFd = true, int32(f.Fd())
		keep = append(keep, k.initFd)
	}
	for _, f := range d.cgroupTasks {
		k.cgroupTasks = append(k.cgroupTasks, int32(f.Fd()))
	}
	keep = append(keep, k.cgroupTasks...)
	slices.Sort(keep)
	k.keep = slices.Compact(keep)
	if opts.DieWithParent {
		k.pdeathsig = uintptr(syscall.SIGKILL)
	}
	if err := planHandOver(k, cfg); err != nil {
		return nil, err
	}
	if err := planCredentials(k, spec, cfg); err != nil {
		return nil, err
	}
	if err := planExec(k, spec); err != nil {
		return nil, err
	}
	if err := planLSM(k, spec); err != nil {
		return nil, err
	}
	return k, nil
}

// planHandOver prepares the filesystems the child opens and the messages
// it sends and receives.
func planHandOver(k *childPlan, cfg initConfig) error {
	types := []string{"proc"}
	for range cgroupMounts(cfg) {
		types = append(types, map[int]string{1: "cgroup", 2: "cgroup2"}[cfg.CgroupVersion])
	}
	for _, t := range types {
		p, err := syscall.BytePtrFromString(t)
		if err != nil {
			return err
		}
		k.fsTypes = append(k.fsTypes, p)
	}
	k.fdsAt = unix.CmsgLen(0)
	k.sendOOB = unix.UnixRights(make([]int, len(types))...)
	k.sendIOV = unix.Iovec{Base: &k.zero[0]}
	k.sendIOV.SetLen(1)
	k.send = unix.Msghdr{Iov: &k.sendIOV, Control: &k.sendOOB[0]}
	k.send.SetIovlen(1)
	k.send.SetControllen(len(k.sendOOB))
	k.tty, k.landlock, k.ruleset = cfg.Spec.TTY, cfg.Spec.Landlock != nil, -1
	k.recvOOB = make([]byte, unix.CmsgSpace(8))
	k.recvIOV = unix.Iovec{Base: &k.recvBuf[0]}
	k.recvIOV.SetLen(1)
	k.recv = unix.Msghdr{Iov: &k.recvIOV, Control: &k.recvOOB[0]}
	k.recv.SetIovlen(1)
	k.recv.SetControllen(len(k.recvOOB))
	return nil
}

// planCredentials prepares the rlimits, the seccomp filter, the bounding
// set, the ids and the capabilities.
func planCredentials(k *childPlan, spec Spec, cfg initConfig) error {
	for _, r := range spec.Rlimits {
		res, ok := rlimitByName(r.Name)
		if !ok {
			return fmt.Errorf("unknown rlimit %q", r.Name)
		}
		k.rlimits = append(k.rlimits, childRlimit{uintptr(res), unix.Rlimit{Cur: r.Soft, Max: r.Hard}})
	}
	if len(cfg.Seccomp) > 0 {
		k.seccomp = &unix.SockFprog{Len: uint16(len(cfg.Seccomp)), Filter: &cfg.Seccomp[0]}
		k.seccompFlags = uintptr(cfg.SeccompFlags)
		k.seccompEarly = spec.AllowNewPrivileges
	}
	k.noNewPrivs = !spec.AllowNewPrivileges
	k.early = spec.AllowNewPrivileges
	mask, drop, err := capSets(cfg.Caps)
	if err != nil {
		return err
	}
	k.capDrop = drop
	k.capHdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	k.capData[0] = unix.CapUserData{Effective: uint32(mask), Permitted: uint32(mask)}
	k.capData[1] = unix.CapUserData{Effective: uint32(mask >> 32), Permitted: uint32(mask >> 32)}
	k.groups = append([]uint32{}, spec.User.Groups...)
	k.uid, k.gid = uintptr(spec.User.UID), uintptr(spec.User.GID)
	return nil
}

// capSets returns the mask of the capabilities named and the list of the
// others the kernel knows: those to drop from the bounding set.
func capSets(names []string) (mask uint64, drop []uintptr, err error) {
	caps, err := capList(names)
	if err != nil {
		return 0, nil, err
	}
	for _, c := range caps {
		mask |= 1 << uint(c)
	}
	last, err := capability.LastCap()
	if err != nil {
		return 0, nil, fmt.Errorf("capabilities: %w", err)
	}
	for c := capability.Cap(0); c <= last; c++ {
		if mask&(1<<uint(c)) == 0 {
			drop = append(drop, uintptr(c))
		}
	}
	return mask, drop, nil
}

// checkEarlyFilter refuses a filter that, installed before the
// workload's credentials are set (no_new_privileges = false: see
// credentials), would answer one of the calls that set them otherwise
// than by letting it through. Failing one would fail every start; faking
// one (ERRNO with errno 0, a success that does nothing) would leave the
// workload berth's root and capabilities.
func checkEarlyFilter(prog []unix.SockFilter, u User, capDrop []uintptr) error {
	type call struct {
		name string
		c    seccomp.Call
	}
	calls := []call{
		{"prctl(PR_SET_KEEPCAPS, 1)", seccomp.Call{Nr: unix.SYS_PRCTL, Args: [6]uint64{unix.PR_SET_KEEPCAPS, 1}}},
		{"setgroups", seccomp.Call{Nr: sysSetgroups, Args: [6]uint64{uint64(len(u.Groups))}}},
		{fmt.Sprintf("setresgid(%d)", u.GID), seccomp.Call{Nr: sysSetresgid, Args: [6]uint64{uint64(u.GID), uint64(u.GID), uint64(u.GID)}}},
		{fmt.Sprintf("setresuid(%d)", u.UID), seccomp.Call{Nr: sysSetresuid, Args: [6]uint64{uint64(u.UID), uint64(u.UID), uint64(u.UID)}}},
		{"capset", seccomp.Call{Nr: unix.SYS_CAPSET}},
		{"prctl(PR_CAP_AMBIENT)", seccomp.Call{Nr: unix.SYS_PRCTL, Args: [6]uint64{unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL}}},
		{"prctl(PR_SET_KEEPCAPS, 0)", seccomp.Call{Nr: unix.SYS_PRCTL, Args: [6]uint64{unix.PR_SET_KEEPCAPS}}},
	}
	for _, c := range capDrop {
		calls = append(calls, call{"prctl(PR_CAPBSET_DROP)", seccomp.Call{Nr: unix.SYS_PRCTL, Args: [6]uint64{unix.PR_CAPBSET_DROP, uint64(c)}}})
	}
	for _, c := range calls {
		ret, ok := seccomp.Verdict(prog, c.c)
		if !ok {
			return errors.New("seccomp profile: its program cannot be checked against berth's own calls, which no_new_privileges = false needs")
		}
		if !seccomp.Allows(ret) {
			return fmt.Errorf("seccomp profile: with no_new_privileges = false berth installs it before it sets the workload's user and capabilities, and it answers berth's %s with %s: allow that call in the profile, or keep no_new_privileges",
				c.name, seccomp.Describe(ret))
		}
	}
	return nil
}

// planExec prepares the working directory, argv, the environment and the
// paths to try, as lookPath would find them.
func planExec(k *childPlan, spec Spec) error {
	cwd := spec.Cwd
	if cwd == "" {
		cwd = "/"
	}
	env, path := workloadEnv(spec.Env)
	var err error
	if k.cwd, err = syscall.BytePtrFromString(cwd); err != nil {
		return err
	}
	if k.argv, err = syscall.SlicePtrFromStrings(spec.Args); err != nil {
		return err
	}
	if k.envv, err = syscall.SlicePtrFromStrings(env); err != nil {
		return err
	}
	for _, p := range execCandidates(spec.Args[0], path) {
		b, err := syscall.BytePtrFromString(p)
		if err != nil {
			return err
		}
		k.paths = append(k.paths, b)
	}
	if spec.Init {
		argv, env := tinyInitArgv(spec, tinyErrRecord, int(k.errPipe))
		if k.initArgv, err = syscall.SlicePtrFromStrings(argv); err != nil {
			return err
		}
		if k.initEnvv, err = syscall.SlicePtrFromStrings(env); err != nil {
			return err
		}
	}
	if tracing {
		const prefix = "berth-trace exec "
		k.trace = make([]byte, len(prefix)+20)
		k.traceLen = copy(k.trace, prefix)
	}
	return nil
}

// execCandidates are the paths a shell tries for name: itself when it
// has a slash, else name in each directory of path ("" is ".").
func execCandidates(name, path string) []string {
	if strings.Contains(name, "/") {
		return []string{name}
	}
	var out []string
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		out = append(out, filepath.Join(dir, name))
	}
	return out
}

// childSteps say what each step of the child does, for its errors (an
// array by step: data, where a map is built at every start).
var childSteps = [...]string{
	stepPdeathsig: "set the parent death signal", stepCloseFds: "close inherited fds",
	stepJoinCgroup: "join the container's cgroup", stepCgroupNS: "unshare cgroup namespace",
	stepHandOver: "hand over filesystems", stepAwait: "wait for berth", stepRoot: "enter the container's root",
	stepTTY: "set controlling terminal", stepStdio: "set up stdio", stepSeccomp: "install seccomp filter",
	stepKeepCaps: "keep capabilities", stepCaps: "apply capabilities", stepAmbient: "clear ambient capabilities",
	stepCloexec: "mark fds close-on-exec", stepNoNewPrivs: "set no_new_privs", stepLandlock: "landlock: restrict",
	stepJoinNS: "join the container's namespaces", stepOOMScore: "set oom_score_adj", stepExecInit: "exec berth's init",
	stepSession: "start a session of its own", stepCloneGuard: "install the clone guard (seccomp)",
}

// describeChildError turns the child's error record into the error of the start.
func describeChildError(k *childPlan, rec [3]uint32, spec Spec) error {
	step, errno, i := rec[0], syscall.Errno(rec[1]), int(rec[2])
	switch step {
	case stepExec:
		name := spec.Args[0]
		switch {
		case errno != unix.ENOENT && errno != unix.ENOTDIR:
			return &StartError{126, fmt.Errorf("exec %s: %w%s", name, errno, execHint(spec, errno))}
		case strings.Contains(name, "/"):
			return &StartError{127, fmt.Errorf("exec %s: no such file", name)}
		}
		_, path := workloadEnv(spec.Env)
		return &StartError{127, fmt.Errorf("exec %s: not found in PATH %s", name, path)}
	case stepExecAttr:
		return setupError(execAttrError(spec, k, i, errno))
	case stepFsopen:
		return setupError(fmt.Errorf("open a %s filesystem: %w", bytePtrString(k.fsTypes, i), errno))
	case stepRlimit:
		return setupError(fmt.Errorf("set rlimits %s: %w%s", formatRlimits(spec.Rlimits), errno, rlimitHint(spec.Rlimits, errno)))
	case stepBounding:
		return setupError(fmt.Errorf("drop bounding capabilities to %v: %w", spec.Caps, errno))
	case stepGroups:
		return setupError(fmt.Errorf("set groups %v: %w", spec.User.Groups, errno))
	case stepGID:
		return setupError(fmt.Errorf("set gid %d: %w", spec.User.GID, errno))
	case stepUID:
		return setupError(fmt.Errorf("set uid %d: %w", spec.User.UID, errno))
	case stepSeccomp:
		if errno == unix.EINVAL && k.seccompFlags != 0 {
			return setupError(fmt.Errorf("install seccomp filter with flags %s: %w", strings.Join(seccomp.FlagNames(uint(k.seccompFlags)), ", "), errno))
		}
	case stepChdir:
		return setupError(fmt.Errorf("chdir to working directory %s: %w", unix.BytePtrToString(k.cwd), errno))
	case stepCwdOutside:
		return setupError(fmt.Errorf("working directory %s is outside the container's root (%v)", unix.BytePtrToString(k.cwd), errno))
	}
	if step < uint32(len(childSteps)) && childSteps[step] != "" {
		return setupError(fmt.Errorf("%s: %w", childSteps[step], errno))
	}
	return setupError(fmt.Errorf("container start failed at step %d: %w", step, errno))
}

func bytePtrString(ps []*byte, i int) string {
	if i < 0 || i >= len(ps) {
		return "?"
	}
	return unix.BytePtrToString(ps[i])
}
