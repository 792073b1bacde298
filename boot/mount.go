package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"berth/board"
)

// earlyMount is one of the filesystems PID 1 mounts before anything else.
type earlyMount struct {
	target, fstype, source string
	flags                  uintptr
	data                   string
	// optional mounts only warn when they fail.
	optional bool
}

const (
	msNoSUIDDevExec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
)

var earlyMounts = []earlyMount{
	{target: "/proc", fstype: "proc", source: "proc", flags: msNoSUIDDevExec},
	{target: "/sys", fstype: "sysfs", source: "sysfs", flags: msNoSUIDDevExec},
	{target: "/dev", fstype: "devtmpfs", source: "devtmpfs", flags: unix.MS_NOSUID, data: "mode=0755"},
	{target: "/dev/pts", fstype: "devpts", source: "devpts", flags: unix.MS_NOSUID | unix.MS_NOEXEC, data: "newinstance,ptmxmode=0666,mode=0620,gid=5", optional: true},
	{target: "/dev/shm", fstype: "tmpfs", source: "shm", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=1777", optional: true},
	{target: "/run", fstype: "tmpfs", source: "run", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=0755", optional: true},
	{target: "/tmp", fstype: "tmpfs", source: "tmp", flags: unix.MS_NOSUID | unix.MS_NODEV, data: "mode=1777", optional: true},
}

// mountEarly mounts /proc, /sys, /dev, /dev/pts, /dev/shm, /run, /tmp and
// the cgroup hierarchy, leaving alone whatever is already mounted. It
// returns the targets it mounted, in order.
func mountEarly(log *Logger) ([]string, error) {
	var mounted []string
	for _, m := range earlyMounts {
		did, err := mountOnce(m.target, m.source, m.fstype, m.flags, m.data)
		if err != nil {
			if m.optional {
				log.Printf("warning: %v", err)
				continue
			}
			return mounted, err
		}
		if did {
			mounted = append(mounted, m.target)
		}
	}
	cg, err := mountCgroups()
	mounted = append(mounted, cg...)
	return mounted, err
}

// mountOnce mounts fstype at target unless something is mounted there
// already, creating target if needed. It reports whether it mounted.
func mountOnce(target, source, fstype string, flags uintptr, data string) (bool, error) {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return false, fmt.Errorf("mount %s at %s: %w", fstype, target, err)
	}
	if isMountPoint(target) {
		return false, nil
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return false, fmt.Errorf("mount %s at %s: %w", fstype, target, err)
	}
	return true, nil
}

// isMountPoint reports whether path is the root of a mount: it sits on
// another device than its parent, or is the same inode as its parent (/).
func isMountPoint(path string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Join(path, ".."), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev || st.Ino == parent.Ino
}

// mountCgroups mounts cgroup2 at /sys/fs/cgroup. When the kernel offers no
// controller on v2 it falls back to a tmpfs there holding one v1
// hierarchy per enabled controller.
func mountCgroups() ([]string, error) {
	const root = "/sys/fs/cgroup"
	// favordynmods (Linux 6.0+) makes moving a process between cgroups
	// cheap, which every container start does once; older kernels refuse
	// the option, so it is retried without.
	did, err := mountOnce(root, "cgroup2", "cgroup2", msNoSUIDDevExec, "nsdelegate,favordynmods")
	if errors.Is(err, unix.EINVAL) {
		did, err = mountOnce(root, "cgroup2", "cgroup2", msNoSUIDDevExec, "nsdelegate")
	}
	if err != nil || !did {
		return nil, err
	}
	ctl, err := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	if err == nil && len(strings.TrimSpace(string(ctl))) > 0 {
		return []string{root}, nil
	}
	if err := unix.Unmount(root, 0); err != nil {
		return nil, fmt.Errorf("unmount controller-less cgroup2 at %s: %w", root, err)
	}
	if err := unix.Mount("cgroup", root, "tmpfs", msNoSUIDDevExec, "mode=0755"); err != nil {
		return nil, fmt.Errorf("mount tmpfs at %s: %w", root, err)
	}
	mounted := []string{root}
	controllers := board.CgroupControllers()
	if len(controllers) == 0 {
		return mounted, errors.New("no cgroup controller enabled in /proc/cgroups")
	}
	var errs []error
	for _, c := range controllers {
		dir := filepath.Join(root, c)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount("cgroup", dir, "cgroup", msNoSUIDDevExec, c); err != nil {
			errs = append(errs, fmt.Errorf("mount cgroup %s at %s: %w", c, dir, err))
			continue
		}
		mounted = append(mounted, dir)
	}
	return mounted, errors.Join(errs...)
}

// mountStateTmpfs mounts a tmpfs, mode 0700, at berth's state directory:
// for a root that is a ramfs, on which overlay's upper layers and the
// images' file capabilities could not be kept.
func mountStateTmpfs(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("mount tmpfs at %s: %w", dir, err)
	}
	if err := unix.Mount("state", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0700"); err != nil {
		return fmt.Errorf("mount tmpfs at %s: %w", dir, err)
	}
	return nil
}
