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

// idMaps checks the ranges of one map (uid_map or gid_map): sizes, the
// 32-bit end, overlaps, and that the ids in need are mapped.
func (c *specCheck) idMaps(key string, ms []IDMap, need []uint32) {
	if len(ms) == 0 {
		c.add(key, -1, "empty: want at least one \"CONTAINER:HOST:SIZE\"")
		return
	}
	if len(ms) > MaxIDMaps {
		c.add(key, -1, "%d ranges: the kernel takes at most %d", len(ms), MaxIDMaps)
		return
	}
	before := len(c.errs)
	for i, m := range ms {
		switch {
		case m.Size == 0:
			c.add(key, i, "%s: size 0", m)
		case uint64(m.Container)+uint64(m.Size) > 1<<32-1, uint64(m.Host)+uint64(m.Size) > 1<<32-1:
			// The kernel refuses a range that reaches 4294967295, (uid_t)-1.
			c.add(key, i, "%s: the range reaches id 4294967295, which is no id (ids go from 0 to 4294967294)", m)
		}
		for j := range i {
			o := ms[j]
			if overlaps(m.Container, m.Size, o.Container, o.Size) {
				c.add(key, i, "%s overlaps %s inside the container", m, o)
			} else if overlaps(m.Host, m.Size, o.Host, o.Size) {
				c.add(key, i, "%s overlaps %s on the host", m, o)
			}
		}
	}
	if len(c.errs) > before {
		return // what the broken ranges map is beside the point
	}
	for _, id := range need {
		if !mapped(ms, id) {
			what := "the container's root (id 0)"
			if id != 0 {
				what = "id " + strconv.FormatUint(uint64(id), 10) + " (the container's user or a group)"
			}
			c.add(key, -1, "does not map %s", what)
			return
		}
	}
}

func overlaps(a, an, b, bn uint32) bool {
	return uint64(a) < uint64(b)+uint64(bn) && uint64(b) < uint64(a)+uint64(an)
}

func mapped(ms []IDMap, id uint32) bool {
	for _, m := range ms {
		if id >= m.Container && uint64(id) < uint64(m.Container)+uint64(m.Size) {
			return true
		}
	}
	return false
}
