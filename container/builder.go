package container

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"berth/internal/safe"
)

// treeResult is what the builder reports: the terminal's master when
// the workload has one, the Landlock ruleset the child was handed when
// the spec has one (kept for the container's execs), or what failed.
type treeResult struct {
	pty      *os.File
	landlock *os.File
	err      error
}

// job is a builder's work: the tree of the child pid (pidfd), whose end
// of the socket is sock's peer.
type job struct {
	cfg   initConfig
	hm    *hostMounts
	sock  *os.File
	pidfd int
	pid   int
}

// builder is a goroutine locked to a fresh thread, started before the
// parent clones the child so that the thread exists by then. Given a
// job (start) it joins the child's namespaces and builds the tree; the
// thread, with its own root, working directory, umask and namespaces,
// then ends with the goroutine, which never unlocks it. Released without
// a job (release), it leaves its thread as it found it.
type builder struct {
	jobs chan job
	done chan treeResult
	sent bool
}

func newBuilder() *builder {
	b := &builder{jobs: make(chan job, 1), done: make(chan treeResult, 1)}
	go b.run()
	return b
}

// run locks the goroutine to its thread. Never the main thread, which
// cannot end and whose view /proc/self shows: there it holds the thread
// until another goroutine has locked one of its own to serve.
func (b *builder) run() {
	runtime.LockOSThread()
	if unix.Gettid() != unix.Getpid() {
		b.serve()
		return
	}
	locked := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		close(locked)
		b.serve()
	}()
	<-locked
	runtime.UnlockOSThread()
}

// serve builds the job's tree, if it gets one, and reports on done. A
// panic in the build is reported there as an error too (berth may be PID
// 1): the thread, perhaps in the container's namespaces, stays locked
// and ends with the goroutine, as after any job. This is the recover of
// both of run's cases: on the main thread, serve runs on run's second
// goroutine.
func (b *builder) serve() {
	j, ok := <-b.jobs
	if !ok {
		runtime.UnlockOSThread()
		return
	}
	var tree treeResult
	err := safe.Call("build the container's tree", func() (err error) {
		tree, err = buildTree(j)
		return err
	})
	if err != nil {
		// The parent waits for the child's execve: the child must end.
		_ = syscall.Kill(j.pid, syscall.SIGKILL)
	}
	tree.err = err
	b.done <- tree
}

// start hands the builder its job.
func (b *builder) start(j job) {
	b.sent = true
	b.jobs <- j
}

// wait returns what the builder of a started job reports.
func (b *builder) wait() treeResult { return <-b.done }

// release lets a builder that got no job go.
func (b *builder) release() {
	if !b.sent {
		close(b.jobs)
	}
}

// builderHook, when set (tests), runs in buildTree once the thread has
// joined the container's namespaces.
var builderHook func()

// buildTree joins the child's namespaces from the builder's thread,
// builds the container's tree and gives the child the go-ahead. It
// returns the terminal's master and the Landlock ruleset, each when
// there is one.
func buildTree(j job) (treeResult, error) {
	cfg, spec := j.cfg, j.cfg.Spec
	// 1. The child's namespaces: setns(CLONE_NEWNS) refuses a thread that
	// shares its filesystem context.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return treeResult{}, fmt.Errorf("unshare filesystem context: %w", err)
	}
	ns := unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC
	if spec.Net != "host" {
		ns |= unix.CLONE_NEWNET
	}
	if err := joinNamespaces(j.pidfd, j.pid, ns); err != nil {
		return treeResult{}, err
	}
	trace("setns")
	if builderHook != nil {
		builderHook()
	}

	// 2. Name the host; bring up lo and, on a bridge, eth0.
	if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
		return treeResult{}, fmt.Errorf("set hostname %q: %w", spec.Hostname, err)
	}
	if spec.Net != "host" {
		if err := netUp(cfg.Net); err != nil {
			return treeResult{}, err
		}
		trace("net-up")
	}

	// 3. The tree, with the child's proc and cgroup contexts, received
	// when the tree first needs one.
	ctxs := &contexts{sock: j.sock, n: 1 + cgroupMounts(cfg)}
	defer ctxs.close()
	root, err := setupRootfs(cfg, j.hm, ctxs.open)
	if err != nil {
		return treeResult{}, err
	}
	defer root.close()
	trace("rootfs")

	// 4. pivot_root, then what needs the new root.
	if err := root.pivotRoot(); err != nil {
		return treeResult{}, err
	}
	if spec.ReadonlyRoot {
		if err := setReadonly(root.root, false); err != nil {
			return treeResult{}, fmt.Errorf("root: %w", err)
		}
	}
	if err := root.mountCgroups(cfg); err != nil {
		return treeResult{}, err
	}
	trace("pivot")

	// 5. Landlock's ruleset, over the finished tree: the child is
	// handed a copy, berth keeps it for the container's execs.
	var tree treeResult
	ruleset := -1
	if spec.Landlock != nil {
		if ruleset, err = landlockRuleset(spec.Landlock, int(root.root.Fd())); err != nil {
			return treeResult{}, err
		}
		if ruleset >= 0 {
			tree.landlock = os.NewFile(uintptr(ruleset), "landlock ruleset")
		}
	}
	if tree.pty, err = goAhead(j.sock, cfg, ruleset); err != nil {
		if tree.landlock != nil {
			tree.landlock.Close()
		}
		return treeResult{}, err
	}
	return tree, nil
}

// joinNamespaces enters the namespaces ns of the process pidfd (pid): in
// one setns through the pidfd, or one by one through /proc before Linux
// 5.8.
func joinNamespaces(pidfd, pid, ns int) error {
	err := unix.Setns(pidfd, ns)
	if err != unix.EINVAL {
		if err != nil {
			return fmt.Errorf("join the container's namespaces: %w", err)
		}
		return nil
	}
	for _, n := range []struct {
		flag int
		name string
	}{{unix.CLONE_NEWNS, "mnt"}, {unix.CLONE_NEWUTS, "uts"}, {unix.CLONE_NEWIPC, "ipc"}, {unix.CLONE_NEWNET, "net"}} {
		if ns&n.flag == 0 {
			continue
		}
		p := "/proc/" + strconv.Itoa(pid) + "/ns/" + n.name
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, n.flag)
			unix.Close(fd)
		}
		if err != nil {
			return fmt.Errorf("join the container's namespace %s: %w", p, err)
		}
	}
	return nil
}

// cgroupMounts is how many cgroup filesystems the container mounts.
func cgroupMounts(cfg initConfig) int {
	if cfg.CgroupVersion == 2 {
		return 1
	}
	return len(cfg.CgroupV1)
}

// contexts are the filesystem contexts the child opened: proc, then its
// cgroup filesystems, n in all, received from sock when first needed.
// open hands them out by type, in that order, and opens any other type
// itself.
type contexts struct {
	sock     *os.File
	n        int
	received bool
	fds      []int
}

func (c *contexts) receive() error {
	c.received = true
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4*c.n))
	m, oobn, _, _, err := unix.Recvmsg(int(c.sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return fmt.Errorf("receive the container's filesystems: %w", err)
	}
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
		c.fds, _ = unix.ParseUnixRights(&msgs[0])
	}
	if m != 1 || len(c.fds) != c.n {
		return errors.New("the container's first process ended before it handed over its filesystems")
	}
	trace("contexts")
	return nil
}

func (c *contexts) open(fstype string) (int, error) {
	if fstype != "proc" && fstype != "cgroup" && fstype != "cgroup2" {
		return fsopen(fstype)
	}
	if !c.received {
		if err := c.receive(); err != nil {
			return -1, err
		}
	}
	if len(c.fds) == 0 {
		return -1, fmt.Errorf("no %s context from the container's first process", fstype)
	}
	fd := c.fds[0]
	c.fds = c.fds[1:]
	return fd, nil
}

func (c *contexts) close() {
	for _, fd := range c.fds {
		unix.Close(fd)
	}
	c.fds = nil
}

// goAhead makes the working directory, opens the terminal (of cfg's
// size) when asked for and sends the child the go-ahead, with the
// terminal's slave and Landlock's ruleset (when not -1); it returns the
// master. It runs after pivot_root: the paths are the container's.
func goAhead(sock *os.File, cfg initConfig, ruleset int) (*os.File, error) {
	spec := cfg.Spec
	if err := makeWorkdir(spec.Cwd); err != nil {
		return nil, err
	}
	var master, slave *os.File
	var fds []int
	if spec.TTY {
		var err error
		if master, slave, err = openPTY(spec.User.UID, spec.User.GID, cfg.winsize()); err != nil {
			return nil, err
		}
		defer slave.Close()
		fds = append(fds, int(slave.Fd()))
	}
	if ruleset >= 0 {
		fds = append(fds, ruleset)
	}
	var rights []byte
	if len(fds) > 0 {
		rights = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(int(sock.Fd()), []byte{'g'}, rights, nil, 0); err != nil {
		if master != nil {
			master.Close()
		}
		return nil, fmt.Errorf("start the container's first process: %w", err)
	}
	trace("go")
	return master, nil
}

// makeWorkdir makes the working directory (an image's WorkingDir) when it
// is missing, inside the root: this thread is host root, and the
// container's /proc holds magic links out of it (/proc/1/cwd is berth's
// working directory until the first process execs), so the path is
// resolved by resolveIn, never by name.
func makeWorkdir(cwd string) error {
	if cwd == "" {
		return nil
	}
	root, err := os.OpenFile("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("create working directory %s: open the root: %w", cwd, err)
	}
	defer root.Close()
	dir, err := resolveIn(root, cwd, createDirs)
	if err != nil {
		return fmt.Errorf("create working directory %s: %w", cwd, err)
	}
	return dir.Close()
}
