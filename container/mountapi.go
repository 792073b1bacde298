package container

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// berth mounts through the new mount API (Linux 5.2): a filesystem is
// created detached (fsopen, fsconfig, fsmount) or a tree is copied detached
// (open_tree), and attached with move_mount onto a handle resolved inside
// the root. Every later step — read-only, propagation — works on the fd of
// the mount it made, never on a path looked up again.

// Mount attributes shared by the pseudo filesystems of a container.
const (
	attrSafe  = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC
	attrDevfs = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NOEXEC
)

// newMount creates a detached filesystem of type fstype from source and
// data, in mount(8) option syntax ("mode=0755,size=64k,newinstance"), with
// the mount attributes attrs (MOUNT_ATTR_*).
func newMount(fstype, source, data string, attrs int) (*os.File, error) {
	return mountContext(fsopen, fstype, source, data, attrs)
}

// newMount is newMount for the filesystems whose view depends on the
// namespaces of who opens them (proc, cgroup): their contexts come from
// r.fsopen.
func (r *rootMounter) newMount(fstype, source, data string, attrs int) (*os.File, error) {
	return mountContext(r.fsopen, fstype, source, data, attrs)
}

// fsopen opens a filesystem context in the calling thread's namespaces.
func fsopen(fstype string) (int, error) { return unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC) }

// mountContext is newMount with a context from open.
func mountContext(open func(string) (int, error), fstype, source, data string, attrs int) (*os.File, error) {
	return mountLabelled(open, fstype, source, data, "", attrs)
}

// newTmpfs is newMount of a tmpfs whose files all carry the SELinux
// context label ("": none).
func newTmpfs(source, data, label string, attrs int) (*os.File, error) {
	return mountLabelled(fsopen, "tmpfs", source, data, label, attrs)
}

// mountLabelled is mountContext with an SELinux context ("": none).
func mountLabelled(open func(string) (int, error), fstype, source, data, context string, attrs int) (*os.File, error) {
	fsfd, err := open(fstype)
	if err != nil {
		return nil, fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	defer unix.Close(fsfd)
	fail := func(step string, err error) (*os.File, error) {
		return nil, fmt.Errorf("%s %s: %w%s", step, fstype, err, fsLog(fsfd))
	}
	if err := unix.FsconfigSetString(fsfd, "source", source); err != nil {
		return fail("configure", err)
	}
	for _, opt := range strings.Split(data, ",") {
		k, v, ok := strings.Cut(opt, "=")
		switch {
		case opt == "":
			continue
		case ok:
			err = unix.FsconfigSetString(fsfd, k, v)
		default:
			err = unix.FsconfigSetFlag(fsfd, k)
		}
		if err != nil {
			return fail("configure "+opt+" on", err)
		}
	}
	// An SELinux context may hold commas (s0:c1,c2): it is one option.
	if context != "" {
		if err := unix.FsconfigSetString(fsfd, "context", context); err != nil {
			return fail("configure context="+context+" on", err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fail("create", err)
	}
	fd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs)
	if err != nil {
		return fail("fsmount", err)
	}
	return os.NewFile(uintptr(fd), fstype), nil
}

// fsLog returns the kernel's messages about a failed fsconfig, if any.
func fsLog(fsfd int) string {
	var msgs []string
	buf := make([]byte, 256)
	for range 8 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

// cloneTree returns a detached copy of the mount at h (with its submounts
// when recursive), as bind mounts make.
func cloneTree(h *os.File, recursive bool) (*os.File, error) {
	flags := unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC | unix.AT_EMPTY_PATH
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(int(h.Fd()), "", uint(flags))
	if errors.Is(err, unix.ENOSYS) {
		return nil, errors.New("open_tree: containers need Linux 5.6 or newer")
	}
	if err != nil {
		return nil, fmt.Errorf("open_tree: %w", err)
	}
	return os.NewFile(uintptr(fd), h.Name()), nil
}

// attach mounts the detached mount tree onto the file the handle target
// refers to.
func attach(tree, target *os.File) error {
	err := unix.MoveMount(int(tree.Fd()), "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// makePrivate stops mount events propagating into or out of the attached
// tree: a copy of a shared host mount is a peer of the original.
func makePrivate(tree *os.File) error {
	if err := unix.Mount("", fdPath(tree), "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mount private: %w", err)
	}
	return nil
}

// setReadonly makes the mount of tree read-only, its submounts included
// when recursive. Without mount_setattr (Linux < 5.12) only the top mount
// can be made read-only, through its handle once it is attached; a
// recursive request is then refused.
func setReadonly(tree *os.File, recursive bool) error {
	flags := unix.AT_EMPTY_PATH
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	err := unix.MountSetattr(int(tree.Fd()), "", uint(flags), &attr)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("make read-only: %w", err)
	case recursive:
		return errors.New("make read-only: needs Linux 5.12 or newer (mount_setattr) to make submounts read-only too")
	}
	return remountReadonly(tree)
}

// remountReadonly makes the attached mount of tree read-only, keeping its
// nosuid, nodev and noexec flags (the kernel refuses to drop locked ones).
func remountReadonly(tree *os.File) error {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(tree.Fd()), &sfs); err != nil {
		return fmt.Errorf("make read-only: %w", err)
	}
	keep := uintptr(sfs.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME)
	if sfs.Flags&unix.ST_RELATIME != 0 {
		keep |= unix.MS_RELATIME
	}
	if err := unix.Mount("", fdPath(tree), "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|keep, ""); err != nil {
		return fmt.Errorf("make read-only: %w", err)
	}
	return nil
}

func fdPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}
