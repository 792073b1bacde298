package container

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Every path berth resolves inside a container's root — mount targets,
// device nodes, masked paths — goes through resolveIn. It walks one
// component at a time from the handle of the component before, with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so a path costs work
// linear in its depth. Only a component that is a symlink is resolved
// again, its whole prefix at once with openat2(RESOLVE_IN_ROOT) from the
// root: the kernel then treats the root as "/" for the symlink and every
// ".." in it, so no symlink in an image can lead out. As the kernel's own
// lookups, a path may go through at most 40 symlinks.

// maxSymlinks is the kernel's limit of symlinks in one lookup (MAXSYMLINKS).
const maxSymlinks = 40

// sysOpenat2 is unix.Openat2; tests wrap it to measure a resolution's work.
var sysOpenat2 = unix.Openat2

// openat2 opens path under dirfd with O_PATH and the resolve flags,
// retrying when a signal or a concurrent rename interrupts the lookup.
func openat2(dirfd int, path string, flags int, resolve uint64) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_PATH | unix.O_CLOEXEC), Resolve: resolve}
	for i := 0; ; i++ {
		fd, err := sysOpenat2(dirfd, path, &how)
		switch {
		case err == nil:
			return fd, nil
		case (err == unix.EINTR || err == unix.EAGAIN) && i < 100:
			continue
		case err == unix.ENOSYS:
			return -1, errors.New("openat2: containers need Linux 5.6 or newer")
		}
		return -1, err
	}
}

// createMode says what resolveIn creates where the path does not exist.
type createMode int

const (
	noCreate   createMode = iota
	createDirs            // every missing component, as a directory
	createFile            // missing parents as directories, the last as an empty file
)

// resolveIn resolves target inside root, creating what mode says, and
// returns an O_PATH handle to it.
func resolveIn(root *os.File, target string, mode createMode) (*os.File, error) {
	return resolveInFrom(root, target, mode, 0)
}

// resolveInFrom is resolveIn with links symlinks already followed.
func resolveInFrom(root *os.File, target string, mode createMode, links int) (*os.File, error) {
	var parts []string
	for _, p := range strings.Split(target, "/") {
		if p != "" && p != "." {
			parts = append(parts, p)
		}
	}
	cur := int(root.Fd())
	closeCur := func() {
		if cur != int(root.Fd()) {
			unix.Close(cur)
		}
	}
	defer func() { closeCur() }()
	if len(parts) == 0 {
		fd, err := openat2(cur, ".", 0, unix.RESOLVE_BENEATH)
		if err != nil {
			return nil, &os.PathError{Op: "resolve", Path: "/", Err: err}
		}
		return os.NewFile(uintptr(fd), "/"), nil
	}
	for i, name := range parts {
		create := mode != noCreate
		fd, err := openat2(cur, name, 0, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS)
		if err == unix.ENOENT && create {
			if i == len(parts)-1 && mode == createFile {
				err = createEmpty(cur, name)
			} else {
				err = unix.Mkdirat(cur, name, 0o755)
			}
			if err == nil || err == unix.EEXIST {
				fd, err = openat2(cur, name, 0, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS)
			}
		}
		if err == unix.ELOOP {
			// A symlink: the whole prefix, inside the root.
			if links++; links <= maxSymlinks {
				first := links == 1
				fd, err = openat2(int(root.Fd()), strings.Join(parts[:i+1], "/"), 0, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
				if err == unix.ENOENT && create && first {
					// A dangling symlink (an image's /etc/resolv.conf to
					// systemd's stub): what it names is made, inside the
					// root, as runc does. Only for the first symlink, so
					// that parts[:i] are the directories they name.
					if next, ok := throughLink(cur, name, parts[:i], parts[i+1:]); ok {
						return resolveInFrom(root, next, mode, links)
					}
				}
			}
		}
		if err != nil {
			return nil, &os.PathError{Op: "resolve", Path: "/" + strings.Join(parts[:i+1], "/"), Err: err}
		}
		closeCur()
		cur = fd
	}
	h := os.NewFile(uintptr(cur), "/"+strings.Join(parts, "/"))
	cur = int(root.Fd())
	return h, nil
}

// throughLink is the path, inside the root, that the symlink name in the
// directory dir (at the root's path parent) names, followed by rest.
func throughLink(dir int, name string, parent, rest []string) (string, bool) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dir, name, buf)
	if err != nil || n <= 0 || n >= len(buf) {
		return "", false
	}
	target := string(buf[:n])
	if !strings.HasPrefix(target, "/") {
		target = "/" + strings.Join(append(append([]string{}, parent...), target), "/")
	}
	// Clean keeps a ".." at the root there, as RESOLVE_IN_ROOT does.
	return path.Clean(target + "/" + strings.Join(rest, "/")), true
}

// createEmpty creates an empty regular file, a mount point for a file.
func createEmpty(dir int, name string) error {
	fd, err := unix.Openat(dir, name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0o644)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// fileID identifies a file: its device and inode, and its mount where the
// kernel reports mount ids (5.8 and newer).
type fileID struct {
	dev, ino, mnt uint64
}

func statID(f *os.File) (fileID, error) {
	var st unix.Statx_t
	if err := unix.Statx(int(f.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO|unix.STATX_MNT_ID, &st); err != nil {
		return fileID{}, fmt.Errorf("statx %s: %w", f.Name(), err)
	}
	id := fileID{dev: unix.Mkdev(st.Dev_major, st.Dev_minor), ino: st.Ino}
	if st.Mask&unix.STATX_MNT_ID != 0 {
		id.mnt = st.Mnt_id
	}
	return id, nil
}

// onMount reports whether f (with id) lies on the same mount as the mount
// root m: the same mount id, or, without mount ids, the same device.
func (id fileID) onMount(m fileID) bool {
	if m == (fileID{}) {
		return false
	}
	if id.mnt != 0 && m.mnt != 0 {
		return id.mnt == m.mnt
	}
	return id.dev == m.dev
}

// checkTarget refuses a mount target that resolved to the container's
// root or to /dev, or onto the /proc or /sys berth mounted: through a
// symlink in an image, a user's mount would otherwise replace the root
// (with the host's / when that is what is bound) or hide what berth
// itself mounted and later writes through.
func (r *rootMounter) checkTarget(target string, h *os.File) error {
	id, err := statID(h)
	if err != nil {
		return fmt.Errorf("mount target %s: %w", target, err)
	}
	switch {
	case id == r.own.root:
		return fmt.Errorf("mount target %s resolves to the container's root", target)
	case id == r.own.dev:
		return fmt.Errorf("mount target %s resolves to /dev, which berth mounts itself", target)
	case id.onMount(r.own.proc):
		return fmt.Errorf("mount target %s resolves into /proc, which berth mounts itself", target)
	case id.onMount(r.own.sys):
		return fmt.Errorf("mount target %s resolves into /sys, which berth mounts itself", target)
	}
	return nil
}
