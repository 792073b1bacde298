package boot

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"berth/internal/mountinfo"
)

// newRootDir is where the bind mount that becomes / is made.
const newRootDir = "/.berth-root"

// onInitramfs reports whether / is the kernel's rootfs (the unpacked
// initramfs). pivot_root cannot move rootfs, so containers could not start.
func onInitramfs() (bool, error) {
	mounts, err := mountinfo.Read()
	if err != nil {
		return false, err
	}
	root := ""
	for _, m := range mounts {
		if m.Point == "/" {
			root = m.FSType // the last mount on / is the visible one
		}
	}
	return root == "rootfs", nil
}

// leaveInitramfs makes / a mount that pivot_root can leave, without
// copying anything. pivot_root refuses a root that is not mounted on
// another mount, and the kernel's rootfs is the bottom of the mount tree;
// a bind mount of it is an ordinary mount. So berth binds / onto a
// directory of its own, moves that bind mount onto / and chroots into it,
// as switch_root does with a new root. The files stay where the kernel
// unpacked them — berth itself, the config, the images, which are
// unpacked from there — and berth goes on in the same process. The /proc
// just used moves along into the new root; any other mount under / is
// left behind, and the early mounts make it again in the new root.
func leaveInitramfs() error {
	for _, m := range []string{"/sys", "/dev"} {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
	// 1. / bound onto a directory of itself.
	if err := os.MkdirAll(newRootDir, 0o700); err != nil {
		return fmt.Errorf("leave initramfs: %w", err)
	}
	if err := unix.Mount("/", newRootDir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("leave initramfs: bind / to %s: %w", newRootDir, err)
	}
	// 2. /proc moved into it: unmounting it and mounting another would
	// wait for an RCU grace period (4-13 ms under QEMU TCG). Should the
	// move fail, the early mounts mount one.
	if err := unix.Mount("/proc", newRootDir+"/proc", "", unix.MS_MOVE, ""); err != nil {
		_ = unix.Unmount("/proc", unix.MNT_DETACH)
	}
	// 3. The bind mount moved onto /, and made the root.
	if err := unix.Chdir(newRootDir); err != nil {
		return fmt.Errorf("leave initramfs: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("leave initramfs: move %s to /: %w", newRootDir, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("leave initramfs: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("leave initramfs: %w", err)
	}
	// The directory, no longer a mount point, is seen again in the new
	// root: the same files.
	_ = unix.Rmdir(newRootDir)
	return nil
}

// rootOnRamfs reports whether / is a ramfs: the kernel's rootfs is a
// tmpfs unless the command line names a root= (or a rootfstype= without
// tmpfs), and then a ramfs, which keeps no extended attributes. Overlay
// needs them for its upper layer, images for file capabilities.
func rootOnRamfs() bool {
	var st unix.Statfs_t
	return unix.Statfs("/", &st) == nil && uint32(st.Type) == unix.RAMFS_MAGIC
}

// sizeRoot grows a tmpfs root (growRootTmpfs) unless the kernel command
// line sized it (initramfs_options).
func (b *booter) sizeRoot() {
	if _, set := b.cmdline["initramfs_options"]; set {
		b.log.Printf("root tmpfs: sized by the kernel's initramfs_options")
	} else if size, err := growRootTmpfs(); err != nil {
		b.log.Printf("warning: %v", err)
	} else if size > 0 {
		b.log.Printf("root tmpfs: %d MiB, half the RAM", size>>20)
	}
}

// growRootTmpfs gives a tmpfs root (the kernel's rootfs) the size any
// tmpfs mounted now gets by default, half the RAM, and returns it in
// bytes (0 when / is not a tmpfs). The kernel sized rootfs before the
// boot freed its own init memory and the compressed initramfs: on a 64 MB
// board that is about 12 MB, nearly all of it taken by the files of the
// initramfs, which leaves no room for the image cache (on this root) to
// unpack an image into. Raising the limit reserves nothing: tmpfs pages
// are taken as files are written, and a container's writes are charged
// to its own memory limit.
func growRootTmpfs() (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil || uint32(st.Type) != unix.TMPFS_MAGIC {
		return 0, nil
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT, "size=50%"); err != nil {
		return 0, fmt.Errorf("remount / with size=50%%: %w", err)
	}
	if err := unix.Statfs("/", &st); err != nil {
		return 0, fmt.Errorf("statfs /: %w", err)
	}
	return int64(st.Blocks) * int64(st.Bsize), nil
}
