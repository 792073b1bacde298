package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount flags shared by the pseudo filesystems of a container.
const (
	msSafe  = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	msDevfs = unix.MS_NOSUID | unix.MS_NOEXEC
)

// setupRootfs builds the container's filesystem tree under rootfs, inside
// the container's mount namespace. Every target is resolved inside rootfs
// (openat2 RESOLVE_IN_ROOT through pathrs-lite), so a symlink in the image
// cannot point a mount at the host.
func setupRootfs(rootfs string, cfg initConfig) error {
	old := unix.Umask(0)
	defer unix.Umask(old)
	spec := cfg.Spec

	// 1. No mount or unmount of ours may propagate to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}

	// 2. Bind the rootfs onto itself: pivot_root needs a mount point.
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if spec.UserNS != nil && errors.Is(err, unix.EACCES) {
			return fmt.Errorf("bind rootfs %s: %w (in a user namespace the rootfs and its parent directories must be searchable by the mapped root, host uid %d)", rootfs, err, rootHostID(spec.UserNS.UIDMap))
		}
		return fmt.Errorf("bind rootfs %s: %w", rootfs, err)
	}
	root, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	r := rootMounter{root: root, path: rootfs, userns: spec.UserNS != nil}

	// 3. /proc: a fresh procfs of our PID namespace, verified to be one
	// before anything is mounted on it or written through it.
	if err := r.mount("proc", "proc", "proc", msSafe, ""); err != nil {
		return err
	}
	if err := r.verifyFS("proc", unix.PROC_SUPER_MAGIC, "procfs"); err != nil {
		return err
	}

	// 4. /sys read-only; /sys/fs/cgroup comes once the init has joined
	// its cgroup (joinCgroup).
	if err := r.mountSys(); err != nil {
		return err
	}

	// 5. /dev: a small tmpfs with the OCI default nodes, a private
	// devpts, /dev/shm, /dev/mqueue and the passed-through devices.
	if err := r.setupDev(cfg.Devices); err != nil {
		return err
	}

	// 6. The spec's own bind and tmpfs mounts.
	if err := r.userMounts(spec.Mounts); err != nil {
		return err
	}

	// 7. runc's masked and read-only paths.
	if err := r.maskPaths(); err != nil {
		return err
	}
	return r.readonlyPaths()
}

// rootMounter mounts filesystems at paths resolved inside a root directory.
type rootMounter struct {
	root *os.File
	path string
	// userns is set in a user namespace, where mknod is not allowed and
	// device nodes are bind-mounted from the host instead.
	userns bool
}

// mount mounts source (of type fstype) at target inside the root. The
// mount goes through /proc/self/fd so the kernel mounts on exactly the
// directory that was resolved.
func (r rootMounter) mount(target, source, fstype string, flags uintptr, data string) error {
	h, err := r.open(target)
	if err != nil {
		return fmt.Errorf("mount %s: %w", fstype, err)
	}
	defer h.Close()
	if err := unix.Mount(source, fdPath(h), fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s at %s: %w", fstype, filepath.Join(r.path, target), err)
	}
	return nil
}

// verifyFS checks that target is the root of a filesystem with the given
// magic, so nothing is mounted on or written through an impostor.
func (r rootMounter) verifyFS(target string, magic int64, what string) error {
	h, err := r.lookup(target)
	if err != nil {
		return fmt.Errorf("verify %s at %s: %w", what, filepath.Join(r.path, target), err)
	}
	defer h.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(h.Fd()), &st); err != nil {
		return fmt.Errorf("verify %s at %s: %w", what, filepath.Join(r.path, target), err)
	}
	if int64(st.Type) != magic {
		return fmt.Errorf("verify %s at %s: filesystem type %#x is not %s", what, filepath.Join(r.path, target), st.Type, what)
	}
	return nil
}

// mountSys mounts a read-only sysfs. Where the kernel refuses a new one
// (a user namespace sharing the host's network namespace), the host's /sys
// is bound read-only instead.
func (r rootMounter) mountSys() error {
	err := r.mount("sys", "sysfs", "sysfs", msSafe|unix.MS_RDONLY, "")
	if err == nil || !errors.Is(err, unix.EPERM) {
		return err
	}
	h, err := r.open("sys")
	if err != nil {
		return err
	}
	defer h.Close()
	if err := unix.Mount("/sys", fdPath(h), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind /sys at %s/sys: %w", r.path, err)
	}
	return r.remountReadonly("sys")
}

// mountCgroups mounts the container's view of its cgroup read-only at
// /sys/fs/cgroup: the unified hierarchy, or a tmpfs holding one directory
// per v1 hierarchy (plus a symlink per co-mounted controller).
func (r rootMounter) mountCgroups(cfg initConfig) error {
	const target = "sys/fs/cgroup"
	if cfg.CgroupVersion == 2 {
		return r.mount(target, "cgroup2", "cgroup2", msSafe|unix.MS_RDONLY, "")
	}
	if err := r.mount(target, "cgroup", "tmpfs", msSafe, "mode=0755,size=16k"); err != nil {
		return err
	}
	dir, err := r.openDir(target)
	if err != nil {
		return err
	}
	defer dir.Close()
	for _, m := range cfg.CgroupV1 {
		if err := r.mount(target+"/"+m.Dir, "cgroup", "cgroup", msSafe|unix.MS_RDONLY, m.Data); err != nil {
			return err
		}
		for _, l := range m.Links {
			if err := unix.Symlinkat(m.Dir, int(dir.Fd()), l); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("symlink %s/%s/%s: %w", r.path, target, l, err)
			}
		}
	}
	h, err := r.lookup(target)
	if err != nil {
		return fmt.Errorf("remount %s read-only: %w", target, err)
	}
	defer h.Close()
	if err := unix.Mount("", fdPath(h), "", unix.MS_REMOUNT|unix.MS_RDONLY|msSafe, "mode=0755,size=16k"); err != nil {
		return fmt.Errorf("remount %s read-only: %w", filepath.Join(r.path, target), err)
	}
	return nil
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

// setupDev mounts a tmpfs at /dev holding the OCI default nodes, /dev/pts
// (a new devpts instance), /dev/shm, /dev/mqueue, the standard symlinks
// and the passed-through devices.
func (r rootMounter) setupDev(devices []Device) error {
	if err := r.mount("dev", "dev", "tmpfs", msDevfs, "mode=0755,size=64k"); err != nil {
		return err
	}
	d, err := r.openDir("dev")
	if err != nil {
		return err
	}
	defer d.Close()
	dfd := int(d.Fd())
	for _, n := range defaultDevices {
		dev := Device{Path: "/dev/" + n.name, Type: 'c', Major: n.major, Minor: n.minor, Mode: 0o666}
		if err := r.makeNode(dev); err != nil {
			return err
		}
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], dfd, l[1]); err != nil {
			return fmt.Errorf("symlink /dev/%s in %s: %w", l[1], r.path, err)
		}
	}
	for _, dir := range []string{"pts", "shm", "mqueue"} {
		if err := unix.Mkdirat(dfd, dir, 0o755); err != nil {
			return fmt.Errorf("mkdir /dev/%s in %s: %w", dir, r.path, err)
		}
	}
	if err := r.mount("dev/pts", "devpts", "devpts", msDevfs, "newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return err
	}
	if err := r.mount("dev/shm", "shm", "tmpfs", msSafe, "mode=1777,size=65536k"); err != nil {
		return err
	}
	if err := r.mount("dev/mqueue", "mqueue", "mqueue", msSafe, ""); err != nil {
		return err
	}
	for _, dev := range devices {
		if err := r.makeNode(dev); err != nil {
			return err
		}
	}
	return nil
}

// makeNode creates a device node inside the root's /dev: with mknod, or,
// in a user namespace, as a bind mount of the host's node.
func (r rootMounter) makeNode(dev Device) error {
	rel := strings.TrimPrefix(filepath.Clean(dev.Path), "/")
	parent, err := r.open(filepath.Dir(rel))
	if err != nil {
		return fmt.Errorf("device %s: %w", dev.Path, err)
	}
	defer parent.Close()
	pd, err := reopenDir(parent)
	if err != nil {
		return fmt.Errorf("device %s: %w", dev.Path, err)
	}
	defer pd.Close()
	name := filepath.Base(rel)
	if r.userns {
		fd, err := unix.Openat(int(pd.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return fmt.Errorf("device %s: create mount point: %w", dev.Path, err)
		}
		unix.Close(fd)
		target, err := r.lookup(rel)
		if err != nil {
			return fmt.Errorf("device %s: %w", dev.Path, err)
		}
		defer target.Close()
		if err := unix.Mount(dev.Path, fdPath(target), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind device %s: %w", dev.Path, err)
		}
		return nil
	}
	mode := uint32(unix.S_IFCHR)
	if dev.Type == 'b' {
		mode = unix.S_IFBLK
	}
	if err := unix.Mknodat(int(pd.Fd()), name, mode|uint32(dev.Mode), int(unix.Mkdev(dev.Major, dev.Minor))); err != nil {
		return fmt.Errorf("mknod %s in %s: %w", dev.Path, r.path, err)
	}
	if err := unix.Fchownat(int(pd.Fd()), name, int(dev.UID), int(dev.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s in %s: %w", dev.Path, r.path, err)
	}
	return nil
}

// pivotRoot makes rootfs the root of the mount namespace and detaches the
// old root, so nothing of the host's tree stays reachable.
func pivotRoot(rootfs string) error {
	fd, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("pivot_root to %s: %w", rootfs, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchdir(fd); err != nil {
		return fmt.Errorf("pivot_root to %s: %w", rootfs, err)
	}
	// pivot_root(".", ".") stacks the old root on top of the new one; the
	// unmount then removes exactly the old root.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root to %s: %w", rootfs, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// remountRootReadonly makes the container's / read-only (after pivot_root).
func remountRootReadonly() error {
	var sfs unix.Statfs_t
	if err := unix.Statfs("/", &sfs); err != nil {
		return fmt.Errorf("remount / read-only: %w", err)
	}
	keep := uintptr(sfs.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|keep, ""); err != nil {
		return fmt.Errorf("remount / read-only: %w", err)
	}
	return nil
}

func fdPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

// rootHostID is the host id the user namespace maps the container's 0 to.
func rootHostID(ms []IDMap) uint32 {
	for _, m := range ms {
		if m.Container == 0 {
			return m.Host
		}
	}
	return 0
}
