package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"berth/board"
	"berth/internal/mountinfo"
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

// cgroupRoot is where PID 1 mounts the cgroup hierarchy.
const cgroupRoot = "/sys/fs/cgroup"

// mountCgroups mounts cgroup2 at /sys/fs/cgroup. When the kernel offers no
// controller on v2 it falls back to a tmpfs there holding one v1
// hierarchy per enabled controller.
func mountCgroups() ([]string, error) {
	const root = cgroupRoot
	did, err := mountOnce(root, "cgroup2", "cgroup2", msNoSUIDDevExec, cgroup2Options)
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

// cgroup2Options are the options PID 1 mounts cgroup2 with: nsdelegate
// makes each container's cgroup namespace a delegation boundary.
const cgroup2Options = "nsdelegate"

// favorDynmods remounts the cgroup2 hierarchy PID 1 mounted with
// favordynmods (Linux 6.0+), which makes moving a process between
// cgroups cheap: a user-namespaced container's init joins its cgroup so,
// once per start, and without the option each such move waits for an RCU
// grace period. Turning it on waits for one grace period too: 10-15 ms
// of an idle CPU under QEMU TCG, a fifth of the early mounts when it was
// a mount option. PID 1 runs it on a goroutine of its own while the boot
// goes on; a move before it is done is only slower. A kernel before 6.0
// refuses the option and nothing changes.
func favorDynmods(log *Logger) {
	err := unix.Mount("cgroup2", cgroupRoot, "cgroup2", unix.MS_REMOUNT|msNoSUIDDevExec, cgroup2Options+",favordynmods")
	if err != nil {
		log.Debugf("cgroup2 at %s: favordynmods: %v", cgroupRoot, err)
		return
	}
	if !log.debug {
		return // the options are read back only to be logged
	}
	mounts, _ := mountinfo.Read()
	for _, m := range mounts {
		if m.Point == cgroupRoot && m.FSType == "cgroup2" {
			log.Debugf("cgroup2 at %s remounted: %s", cgroupRoot, m.Super)
		}
	}
}

// isCgroup2 reports whether dir is a cgroup2 mount.
func isCgroup2(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && uint32(st.Type) == unix.CGROUP2_SUPER_MAGIC
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
