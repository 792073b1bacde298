package container

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// A user-namespaced container's root filesystem belongs, on the host, to
// the image's owners (root, mostly), whom the namespace does not map: its
// root could neither create /proc in it nor write its own files. berth
// chowns nothing. Start maps the detached root mount it hands the init
// through the container's user namespace (mount_setattr MOUNT_ATTR_IDMAP,
// Linux 5.12+, where the filesystem allows: ext4, btrfs, xfs; tmpfs from
// 6.3; overlay from 5.19), so the container sees the owners it would see
// without one, and its writes land with those ids. A root filesystem
// whose root directory the namespace's root already owns on the host —
// berth boot's overlay over an idmapped (or shifted) image, or a tree an
// operator chowned — is left as it is.

// IDMapUserNS returns an fd of a new user namespace with ns's maps, for
// idmapped mounts made before the container exists. A process is cloned
// into it, stopped before it runs anything (ptrace stops it at its
// execve), and killed once the namespace is open.
func IDMapUserNS(ns *UserNS) (*os.File, error) {
	runtime.LockOSThread() // the tracer is this thread
	defer runtime.UnlockOSThread()
	attr := &syscall.ProcAttr{Sys: &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER, UidMappings: idMaps(ns.UIDMap), GidMappings: idMaps(ns.GIDMap),
		Ptrace: true, Pdeathsig: syscall.SIGKILL,
	}}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"berth-userns"}, attr)
	if err != nil {
		return nil, fmt.Errorf("user namespace for an idmapped mount: %w", err)
	}
	defer func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		for {
			if _, err := syscall.Wait4(pid, &ws, syscall.WALL, nil); err != syscall.EINTR {
				break
			}
		}
	}()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/user")
	if err != nil {
		return nil, fmt.Errorf("user namespace for an idmapped mount: %w", err)
	}
	return f, nil
}

// IDMapTree maps the detached mount tree through the user namespace
// userns, submounts included.
func IDMapTree(tree, userns *os.File) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	err := unix.MountSetattr(int(tree.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOSYS):
		return errors.New("idmapped mounts need Linux 5.12 or newer")
	case errors.Is(err, unix.EINVAL):
		var st unix.Statfs_t
		_ = unix.Fstatfs(int(tree.Fd()), &st)
		return fmt.Errorf("this kernel cannot idmap a mount of its filesystem (type %#x): %w", st.Type, err)
	}
	return fmt.Errorf("idmap mount: %w", err)
}

// rootMapped reports whether the tree's root directory is owned, on the
// host, by the user namespace's root: it needs no idmapping.
func rootMapped(tree *os.File, ns *UserNS) bool {
	var st unix.Stat_t
	if err := unix.Fstat(int(tree.Fd()), &st); err != nil {
		return false
	}
	uid, ok := hostID(ns.UIDMap, 0)
	return ok && st.Uid == uid
}

// hostID is the host id of container id id under maps.
func hostID(maps []IDMap, id uint32) (uint32, bool) {
	for _, m := range maps {
		if id >= m.Container && id-m.Container < m.Size {
			return m.Host + (id - m.Container), true
		}
	}
	return 0, false
}

// idmapRootfs maps the detached rootfs through the user namespace of the
// init pid, unless it is mapped already.
func idmapRootfs(hm *hostMounts, spec Spec, pid int) error {
	if rootMapped(hm.rootfs, spec.UserNS) {
		return nil
	}
	userns, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/user")
	if err != nil {
		return fmt.Errorf("rootfs %s: %w", spec.Rootfs, err)
	}
	defer userns.Close()
	if err := IDMapTree(hm.rootfs, userns); err != nil {
		return fmt.Errorf("rootfs %s in a user namespace: %w", spec.Rootfs, err)
	}
	return nil
}

// CanIDMap reports, as an error saying why not, whether a mount of dir
// can be idmapped through a user namespace with ns's maps.
func CanIDMap(dir string, ns *UserNS) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", dir, err)
	}
	tree := os.NewFile(uintptr(fd), dir)
	defer tree.Close()
	userns, err := IDMapUserNS(ns)
	if err != nil {
		return err
	}
	defer userns.Close()
	return IDMapTree(tree, userns)
}
