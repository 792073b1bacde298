package container

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Mount is an extra mount in a container: a bind mount of a host file,
// directory or socket, or a tmpfs.
type Mount struct {
	// Type is "bind" (default) or "tmpfs".
	Type string `json:"type,omitempty"`
	// Source is the host path of a bind mount.
	Source string `json:"source,omitempty"`
	// Target is the path inside the container.
	Target   string `json:"target"`
	Readonly bool   `json:"readonly,omitempty"`
	// Size caps a tmpfs, in bytes (default: the kernel's, half of RAM,
	// still charged to the container's memory limit).
	Size int64 `json:"size,omitempty"`
}

// maskedPaths are runc's default masked paths: files are covered by
// /dev/null, directories by an empty read-only tmpfs.
var maskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
}

// readonlyPaths are runc's default read-only paths.
var readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

// userMounts performs the spec's extra mounts inside the root.
func (r rootMounter) userMounts(mounts []Mount) error {
	for _, m := range mounts {
		if err := r.userMount(m); err != nil {
			return err
		}
	}
	return nil
}

func (r rootMounter) userMount(m Mount) error {
	target := path.Clean(m.Target)
	if m.Type == "tmpfs" {
		data := "mode=0755"
		if m.Size > 0 {
			data += fmt.Sprintf(",size=%d", m.Size)
		}
		flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
		if m.Readonly {
			flags |= unix.MS_RDONLY
		}
		return r.mount(target, "tmpfs", "tmpfs", flags, data)
	}
	// A bind mount: the host source is opened first, so the mount binds
	// exactly what was checked; the target is created inside the root as
	// a directory or an empty file, matching the source.
	src, err := os.OpenFile(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bind mount source %s: %w", m.Source, err)
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return fmt.Errorf("bind mount source %s: %w", m.Source, err)
	}
	dst, err := r.openTarget(target, fi.IsDir())
	if err != nil {
		return fmt.Errorf("bind mount %s: %w", m.Source, err)
	}
	defer dst.Close()
	full := filepath.Join(r.path, target)
	if err := unix.Mount(fdPath(src), fdPath(dst), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount %s at %s: %w", m.Source, full, err)
	}
	if m.Readonly {
		return r.remountReadonly(target)
	}
	return nil
}

// openTarget resolves a mount target inside the root, creating it (and
// its parents) as a directory or as an empty regular file.
func (r rootMounter) openTarget(target string, dir bool) (*os.File, error) {
	if dir {
		return r.open(target)
	}
	if h, err := r.lookup(target); err == nil {
		return h, nil
	}
	parent, err := r.open(path.Dir(target))
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	pd, err := reopenDir(parent)
	if err != nil {
		return nil, fmt.Errorf("open %s in %s: %w", path.Dir(target), r.path, err)
	}
	defer pd.Close()
	fd, err := unix.Openat(int(pd.Fd()), path.Base(target), unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create mount point %s in %s: %w", target, r.path, err)
	}
	unix.Close(fd)
	return r.lookup(target)
}

// maskPaths hides runc's masked paths: /dev/null (checked to be the char
// device 1:3) over files, an empty read-only tmpfs over directories.
func (r rootMounter) maskPaths() error {
	null, err := r.lookup("dev/null")
	if err != nil {
		return fmt.Errorf("mask paths: open /dev/null: %w", err)
	}
	defer null.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(null.Fd()), &st); err != nil {
		return fmt.Errorf("mask paths: stat /dev/null: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(uint64(st.Rdev)) != 1 || unix.Minor(uint64(st.Rdev)) != 3 {
		return fmt.Errorf("mask paths: %s/dev/null is not the char device 1:3", r.path)
	}
	for _, p := range maskedPaths {
		h, err := r.lookup(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
		var hs unix.Stat_t
		err = unix.Fstat(int(h.Fd()), &hs)
		if err == nil {
			if hs.Mode&unix.S_IFMT == unix.S_IFDIR {
				err = unix.Mount("tmpfs", fdPath(h), "tmpfs", unix.MS_RDONLY|msSafe, "size=0,mode=0555")
			} else {
				err = unix.Mount(fdPath(null), fdPath(h), "", unix.MS_BIND, "")
			}
		}
		h.Close()
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	return nil
}

// readonlyPaths makes runc's read-only paths read-only bind mounts.
func (r rootMounter) readonlyPaths() error {
	for _, p := range readonlyPaths {
		h, err := r.lookup(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
		err = unix.Mount(fdPath(h), fdPath(h), "", unix.MS_BIND|unix.MS_REC, "")
		h.Close()
		if err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
		if err := r.remountReadonly(p); err != nil {
			return err
		}
	}
	return nil
}

// remountReadonly makes the bind mount at target read-only, keeping its
// nosuid, nodev and noexec flags (the kernel refuses to drop locked ones).
func (r rootMounter) remountReadonly(target string) error {
	h, err := r.lookup(target)
	if err != nil {
		return fmt.Errorf("remount %s read-only: %w", target, err)
	}
	defer h.Close()
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(h.Fd()), &sfs); err != nil {
		return fmt.Errorf("remount %s read-only: %w", target, err)
	}
	keep := uintptr(sfs.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME)
	if sfs.Flags&unix.ST_RELATIME != 0 {
		keep |= unix.MS_RELATIME
	}
	flags := unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | keep
	if err := unix.Mount("", fdPath(h), "", flags, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", filepath.Join(r.path, target), err)
	}
	return nil
}
