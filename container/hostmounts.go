package container

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The parent prepares, before it starts the init, every mount whose source
// is a host path: the rootfs, each bind mount's source and, in a user
// namespace, the device nodes. Each is a detached copy (open_tree) of what
// the parent opened, made read-only — submounts included — when asked,
// and handed to the init as an inherited fd; the init attaches it with
// move_mount. The init thus looks up no host path: nothing in a directory
// a container can write can redirect it between a check and a use, and a
// user-namespaced init needs no search permission on berth's 0700 state
// directories.

// hostMounts are the detached mounts of one start.
type hostMounts struct {
	rootfs  *os.File
	binds   []*os.File // one per spec mount; nil for a tmpfs
	devices []*os.File // one per containerDevices entry, in a user namespace
}

// prepareHostMounts opens and detaches the host side of spec's mounts.
func prepareHostMounts(spec Spec, devices []Device) (*hostMounts, error) {
	hm := &hostMounts{}
	ok := false
	defer func() {
		if !ok {
			hm.close()
		}
	}()
	root, err := os.OpenFile(spec.Rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs: %w", err)
	}
	hm.rootfs, err = cloneTree(root, true)
	root.Close()
	if err != nil {
		return nil, fmt.Errorf("rootfs %s: %w", spec.Rootfs, err)
	}
	for _, m := range spec.Mounts {
		var tree *os.File
		if m.Type != "tmpfs" {
			if tree, err = bindSource(m); err != nil {
				return nil, err
			}
		}
		hm.binds = append(hm.binds, tree)
	}
	if spec.UserNS != nil {
		for _, d := range containerDevices(devices) {
			tree, err := deviceSource(d)
			if err != nil {
				return nil, err
			}
			hm.devices = append(hm.devices, tree)
		}
	}
	ok = true
	if afterHostMounts != nil {
		afterHostMounts()
	}
	return hm, nil
}

// bindSource detaches the source of the bind mount m, read-only when m
// says so: its Handle, or Source opened now. A source with a symlink
// anywhere on its path is refused unless m.FollowSymlink: whoever can
// write one of its directories could otherwise swap what gets bound.
func bindSource(m Mount) (*os.File, error) {
	if m.Volume != "" {
		return nil, fmt.Errorf("bind mount at %s: volume %s has no host directory (berth boot makes them on the data partition)", m.Target, m.Volume)
	}
	src := m.Handle
	if src == nil {
		var err error
		if src, err = openBindSource(m); err != nil {
			return nil, err
		}
		defer src.Close()
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return nil, fmt.Errorf("bind mount source %s: %w", m.Source, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil, fmt.Errorf("bind mount source %s is a symlink (follow_symlink binds what it points to)", m.Source)
	}
	if m.CheckSource != nil {
		if err := m.CheckSource(src); err != nil {
			return nil, err
		}
	}
	tree, err := cloneTree(src, true)
	if err == nil && m.Readonly {
		if err = setReadonly(tree, true); err != nil {
			tree.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bind mount source %s: %w", m.Source, err)
	}
	return tree, nil
}

// openBindSource opens m.Source as an O_PATH handle: through symlinks
// when m.FollowSymlink, otherwise with openat2's RESOLVE_NO_SYMLINKS, so
// a symlink in any component, the last one included, is refused, naming
// it (RESOLVE_NO_SYMLINKS refuses magic links too).
func openBindSource(m Mount) (*os.File, error) {
	if m.FollowSymlink {
		f, err := os.OpenFile(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("bind mount source %s: %w", m.Source, err)
		}
		return f, nil
	}
	fd, err := openat2(unix.AT_FDCWD, m.Source, 0, unix.RESOLVE_NO_SYMLINKS)
	if err == unix.ELOOP {
		return nil, fmt.Errorf("bind mount source %s: %s, which berth does not follow (give a path without links, or set follow_symlink)", m.Source, symlinkOnPath(m.Source))
	}
	if err != nil {
		return nil, fmt.Errorf("bind mount source %s: %w", m.Source, err)
	}
	return os.NewFile(uintptr(fd), m.Source), nil
}

// symlinkOnPath says which component of the absolute path p, walked as
// written ("..", too), is a symlink, for an error message: "P is a
// symlink", or "a component is a symlink" when none is one by now.
func symlinkOnPath(p string) string {
	walked := ""
	for _, name := range strings.Split(p, "/") {
		if name == "" {
			continue
		}
		walked += "/" + name
		if fi, err := os.Lstat(walked); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return walked + " is a symlink"
		}
	}
	return "a component is a symlink"
}

// deviceSource detaches a bind mount of the host's device node d, checked
// to be the device the container's cgroup allows.
func deviceSource(d Device) (*os.File, error) {
	f, err := os.OpenFile(d.Path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", d.Path, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("device %s: %w", d.Path, err)
	}
	typ := map[uint32]byte{unix.S_IFCHR: 'c', unix.S_IFBLK: 'b'}[st.Mode&unix.S_IFMT]
	if typ != d.Type || unix.Major(uint64(st.Rdev)) != d.Major || unix.Minor(uint64(st.Rdev)) != d.Minor {
		return nil, fmt.Errorf("device %s: no longer the device %c %d:%d", d.Path, d.Type, d.Major, d.Minor)
	}
	tree, err := cloneTree(f, false)
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", d.Path, err)
	}
	return tree, nil
}

// pass appends the mounts' fds to the init's files and records their
// numbers in cfg. They must stay below the fd berth executes itself
// through (highFd).
func (hm *hostMounts) pass(files []uintptr, cfg *initConfig) ([]uintptr, error) {
	cfg.RootfsFd = len(files)
	files = append(files, hm.rootfs.Fd())
	for _, b := range hm.binds {
		fd := -1
		if b != nil {
			fd = len(files)
			files = append(files, b.Fd())
		}
		cfg.MountFds = append(cfg.MountFds, fd)
	}
	for _, d := range hm.devices {
		cfg.DeviceFds = append(cfg.DeviceFds, len(files))
		files = append(files, d.Fd())
	}
	if len(files) >= highFd {
		return nil, fmt.Errorf("too many mounts and devices: %d fds for the container's init, at most %d", len(files), highFd)
	}
	return files, nil
}

// receivedMounts returns the detached mounts the parent passed to the
// container's init as the fds cfg names (see pass).
func receivedMounts(cfg initConfig) *hostMounts {
	hm := &hostMounts{rootfs: os.NewFile(uintptr(cfg.RootfsFd), cfg.Spec.Rootfs)}
	for i, fd := range cfg.MountFds {
		var f *os.File
		if fd >= 0 && i < len(cfg.Spec.Mounts) {
			f = os.NewFile(uintptr(fd), cfg.Spec.Mounts[i].Source)
		}
		hm.binds = append(hm.binds, f)
	}
	for _, fd := range cfg.DeviceFds {
		hm.devices = append(hm.devices, os.NewFile(uintptr(fd), "device"))
	}
	return hm
}

// close releases the parent's fds; a copy the init has not attached
// vanishes with the last one.
func (hm *hostMounts) close() {
	for _, f := range append(append([]*os.File{hm.rootfs}, hm.binds...), hm.devices...) {
		if f != nil {
			f.Close()
		}
	}
}
