package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// rootMounter builds a container's filesystem tree: every mount goes onto
// a handle resolved inside the root (see resolveIn), every mount it makes
// is kept by its fd.
type rootMounter struct {
	root *os.File
	path string // the rootfs's host path, for messages
	// userns is set in a user namespace, where mknod is not allowed and
	// device nodes are bind mounts of the host's prepared by the parent.
	userns bool
	// fsopen opens the context of a proc or cgroup filesystem, whose
	// view depends on the PID or cgroup namespace of whoever opens it:
	// unix.Fsopen in the container's init, the contexts the container's
	// first process opened on a direct start (direct.go).
	fsopen func(fstype string) (int, error)
	// selinux is the SELinux context of the container's tmpfs mounts
	// ("": none).
	selinux string
	// proc, sys and dev are berth's own mounts, once made.
	proc, sys, dev *os.File
	// own identifies the root and berth's own mounts, onto which no
	// user's mount may go (checkTarget).
	own struct{ root, proc, sys, dev fileID }
}

// setupRootfs builds the container's filesystem tree inside the mount
// namespace of the calling thread. The rootfs, bind sources and (in a
// user namespace) device nodes are the detached mounts of hm (see
// hostmounts.go): nothing here looks up a host path. hm's files stay
// open, attached; the caller closes them.
func setupRootfs(cfg initConfig, hm *hostMounts, fsopen func(string) (int, error)) (*rootMounter, error) {
	old := unix.Umask(0)
	defer unix.Umask(old)
	spec := cfg.Spec

	// 1. No mount or unmount of ours may propagate to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("make / private: %w", err)
	}

	// 2. The rootfs, attached over our "/" — a mount point, as pivot_root
	// needs — and made private: a copy of a shared mount is its peer.
	root := hm.rootfs
	if err := unix.MoveMount(int(root.Fd()), "", unix.AT_FDCWD, "/", unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return nil, fmt.Errorf("attach rootfs %s: %w", spec.Rootfs, err)
	}
	if err := makePrivate(root); err != nil {
		return nil, fmt.Errorf("rootfs %s: %w", spec.Rootfs, err)
	}
	r := &rootMounter{root: root, path: spec.Rootfs, userns: spec.UserNS != nil, fsopen: fsopen, selinux: spec.mountLabel()}
	var err error
	if r.own.root, err = statID(root); err != nil {
		return nil, err
	}

	// 3. /sys read-only; /sys/fs/cgroup comes once the container has
	// its cgroup namespace (joinCgroup).
	if err := r.mountSys(); err != nil {
		return nil, err
	}

	// 4. /dev: a small tmpfs with the OCI default nodes, a private
	// devpts, /dev/shm, /dev/mqueue and the passed-through devices.
	if err := r.setupDev(cfg.Devices, hm.devices); err != nil {
		return nil, err
	}

	// 5. /proc: a fresh procfs of the container's PID namespace (on a
	// direct start, from the context the child opened: mounting /sys and
	// /dev first gives it time to).
	if r.proc, err = r.newMount("proc", "proc", "", attrSafe); err != nil {
		return nil, fmt.Errorf("mount /proc: %w", err)
	}
	if r.own.proc, err = r.attachOwn("proc", r.proc); err != nil {
		return nil, err
	}

	// 6. The spec's own bind and tmpfs mounts.
	if err := r.userMounts(spec.Mounts, hm.binds); err != nil {
		return nil, err
	}

	// 7. runc's masked and read-only paths.
	if err := r.maskPaths(); err != nil {
		return nil, err
	}
	if err := r.readonlyPaths(); err != nil {
		return nil, err
	}
	return r, nil
}

// close releases the handles of the mounts berth made.
func (r *rootMounter) close() {
	for _, f := range []*os.File{r.proc, r.sys, r.dev} {
		if f != nil {
			f.Close()
		}
	}
}

// mountPoint returns a handle to the directory name at the top of the
// root, created if missing, where berth mounts one of its own
// filesystems. It must be a real directory: through a symlink an image
// could aim the mount, and everything berth later writes through it, at
// any directory, the root itself included (CVE-2019-19921).
func (r *rootMounter) mountPoint(name string) (*os.File, error) {
	fd, err := openat2(int(r.root.Fd()), name, unix.O_DIRECTORY, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS)
	if err == unix.ENOENT {
		if err = unix.Mkdirat(int(r.root.Fd()), name, 0o755); err == nil || err == unix.EEXIST {
			fd, err = openat2(int(r.root.Fd()), name, unix.O_DIRECTORY, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS)
		}
	}
	switch {
	case err == unix.ELOOP:
		return nil, fmt.Errorf("rootfs %s: /%s is a symlink; berth mounts its own /%s there and needs a real directory", r.path, name, name)
	case err == unix.ENOTDIR:
		return nil, fmt.Errorf("rootfs %s: /%s is not a directory; berth mounts its own /%s there", r.path, name, name)
	case err != nil:
		return nil, fmt.Errorf("rootfs %s: open /%s: %w", r.path, name, err)
	}
	h := os.NewFile(uintptr(fd), "/"+name)
	id, err := statID(h)
	if err == nil && id == r.own.root {
		err = fmt.Errorf("rootfs %s: /%s is the root itself", r.path, name)
	}
	if err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

// attachOwn attaches the detached mount m at the top-level directory name
// and returns the identity of its root.
func (r *rootMounter) attachOwn(name string, m *os.File) (fileID, error) {
	h, err := r.mountPoint(name)
	if err != nil {
		return fileID{}, err
	}
	defer h.Close()
	if err := attach(m, h); err != nil {
		return fileID{}, fmt.Errorf("mount /%s in %s: %w", name, r.path, err)
	}
	return statID(m)
}

// mountSys mounts a read-only sysfs. Where the kernel refuses a new one
// (a user namespace sharing the host's network namespace), the host's /sys
// is bound read-only instead.
func (r *rootMounter) mountSys() error {
	var err error
	r.sys, err = newMount("sysfs", "sysfs", "", attrSafe|unix.MOUNT_ATTR_RDONLY)
	if errors.Is(err, unix.EPERM) {
		var host *os.File
		if host, err = os.OpenFile("/sys", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			r.sys, err = cloneTree(host, true)
			host.Close()
		}
		if err == nil {
			if r.own.sys, err = r.attachOwn("sys", r.sys); err == nil {
				err = setReadonly(r.sys, true)
			}
		}
		if err != nil {
			return fmt.Errorf("bind the host's /sys at %s/sys: %w", r.path, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("mount /sys: %w", err)
	}
	r.own.sys, err = r.attachOwn("sys", r.sys)
	return err
}

// mountCgroups mounts the container's view of its cgroup read-only at
// /sys/fs/cgroup: the unified hierarchy, or a tmpfs holding one directory
// per v1 hierarchy (plus a symlink per co-mounted controller). It runs
// after pivot_root, in the container's cgroup namespace.
func (r *rootMounter) mountCgroups(cfg initConfig) error {
	const target = "/sys/fs/cgroup"
	h, err := resolveIn(r.root, target, noCreate)
	if err != nil {
		return fmt.Errorf("mount cgroups: %w", err)
	}
	defer h.Close()
	if cfg.CgroupVersion == 2 {
		m, err := r.newMount("cgroup2", "cgroup2", "", attrSafe|unix.MOUNT_ATTR_RDONLY)
		if err == nil {
			defer m.Close()
			err = attach(m, h)
		}
		if err != nil {
			return fmt.Errorf("mount %s: %w", target, err)
		}
		return nil
	}
	dir, err := newMount("tmpfs", "cgroup", "mode=0755,size=16k", attrSafe)
	if err == nil {
		defer dir.Close()
		err = attach(dir, h)
	}
	if err != nil {
		return fmt.Errorf("mount %s: %w", target, err)
	}
	for _, m := range cfg.CgroupV1 {
		if err := r.mountV1(dir, m); err != nil {
			return fmt.Errorf("mount %s/%s: %w", target, m.Dir, err)
		}
	}
	if err := setReadonly(dir, false); err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	return nil
}

// mountV1 mounts one v1 hierarchy in the cgroup tmpfs dir.
func (r *rootMounter) mountV1(dir *os.File, m v1Mount) error {
	if err := unix.Mkdirat(int(dir.Fd()), m.Dir, 0o755); err != nil {
		return err
	}
	for _, l := range m.Links {
		if err := unix.Symlinkat(m.Dir, int(dir.Fd()), l); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink %s: %w", l, err)
		}
	}
	fd, err := unix.Openat(int(dir.Fd()), m.Dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	h := os.NewFile(uintptr(fd), m.Dir)
	defer h.Close()
	cg, err := r.newMount("cgroup", "cgroup", m.Data, attrSafe|unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return err
	}
	defer cg.Close()
	return attach(cg, h)
}

// devNode is one of the OCI runtime spec's default device nodes.
type devNode struct {
	name         string
	major, minor uint32
}

var defaultDevices = []devNode{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
	{"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// containerDevices lists the nodes of a container's /dev: the defaults,
// then the passed-through devices.
func containerDevices(passed []Device) []Device {
	devs := make([]Device, 0, len(defaultDevices)+len(passed))
	for _, n := range defaultDevices {
		devs = append(devs, Device{Path: "/dev/" + n.name, Type: 'c', Major: n.major, Minor: n.minor, Mode: 0o666})
	}
	return append(devs, passed...)
}

// setupDev mounts a tmpfs at /dev holding the OCI default nodes, /dev/pts
// (a new devpts instance), /dev/shm, /dev/mqueue, the standard symlinks
// and the passed-through devices; in a user namespace trees are the
// detached bind mounts of the host's nodes, in containerDevices order.
func (r *rootMounter) setupDev(devices []Device, trees []*os.File) error {
	var err error
	if r.dev, err = newMount("tmpfs", "dev", "mode=0755,size=64k", attrDevfs); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	if r.own.dev, err = r.attachOwn("dev", r.dev); err != nil {
		return err
	}
	dfd := int(r.dev.Fd())
	links := [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], dfd, l[1]); err != nil {
			return fmt.Errorf("symlink /dev/%s in %s: %w", l[1], r.path, err)
		}
	}
	subs := []struct{ dir, fstype, source, data string }{
		{"pts", "devpts", "devpts", "newinstance,ptmxmode=0666,mode=0620,gid=5"},
		{"shm", "tmpfs", "shm", "mode=1777,size=65536k"},
		{"mqueue", "mqueue", "mqueue", ""},
	}
	for _, s := range subs {
		attrs := attrSafe
		if s.dir == "pts" {
			attrs = attrDevfs
		}
		if err := r.mountInDev(s.dir, s.fstype, s.source, s.data, attrs); err != nil {
			return err
		}
	}
	for i, dev := range containerDevices(devices) {
		var tree *os.File
		if i < len(trees) {
			tree = trees[i]
		}
		if err := r.makeNode(dev, tree); err != nil {
			return err
		}
	}
	return nil
}

// mountInDev mounts a new filesystem at the new directory /dev/DIR.
func (r *rootMounter) mountInDev(dir, fstype, source, data string, attrs int) error {
	if err := unix.Mkdirat(int(r.dev.Fd()), dir, 0o755); err != nil {
		return fmt.Errorf("mkdir /dev/%s in %s: %w", dir, r.path, err)
	}
	fd, err := unix.Openat(int(r.dev.Fd()), dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/%s in %s: %w", dir, r.path, err)
	}
	h := os.NewFile(uintptr(fd), dir)
	defer h.Close()
	var m *os.File
	if fstype == "tmpfs" { // /dev/shm: the workload's files
		m, err = newTmpfs(source, data, r.selinux, attrs)
	} else {
		m, err = newMount(fstype, source, data, attrs)
	}
	if err == nil {
		defer m.Close()
		err = attach(m, h)
	}
	if err != nil {
		return fmt.Errorf("mount /dev/%s: %w", dir, err)
	}
	return nil
}

// makeNode creates a device node in /dev: with mknod, or, in a user
// namespace, by attaching the parent's detached bind mount of the host's
// node (tree) onto an empty file.
func (r *rootMounter) makeNode(dev Device, tree *os.File) error {
	rel := strings.TrimPrefix(filepath.Clean(dev.Path), "/dev/")
	if r.userns && tree != nil {
		h, err := resolveIn(r.dev, rel, createFile)
		if err == nil {
			defer h.Close()
			err = attach(tree, h)
		}
		if err != nil {
			return fmt.Errorf("device %s: %w", dev.Path, err)
		}
		return nil
	}
	parent, err := resolveIn(r.dev, filepath.Dir(rel), createDirs)
	if err != nil {
		return fmt.Errorf("device %s: %w", dev.Path, err)
	}
	defer parent.Close()
	name := filepath.Base(rel)
	mode := uint32(unix.S_IFCHR)
	if dev.Type == 'b' {
		mode = unix.S_IFBLK
	}
	if err := unix.Mknodat(int(parent.Fd()), name, mode|uint32(dev.Mode), int(unix.Mkdev(dev.Major, dev.Minor))); err != nil {
		return fmt.Errorf("mknod %s in %s: %w", dev.Path, r.path, err)
	}
	if err := unix.Fchownat(int(parent.Fd()), name, int(dev.UID), int(dev.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s in %s: %w", dev.Path, r.path, err)
	}
	return nil
}

// pivotRoot makes the root the root of the mount namespace and detaches
// the old one, so nothing of the host's tree stays reachable.
func (r *rootMounter) pivotRoot() error {
	if err := unix.Fchdir(int(r.root.Fd())); err != nil {
		return fmt.Errorf("pivot_root to %s: %w", r.path, err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one; the
	// unmount then removes exactly the old root.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root to %s: %w", r.path, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}
