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
// unpacked from there — and berth goes on in the same process. Mounts
// under / (the /proc just used) are left behind; the early mounts make
// them again in the new root.
func leaveInitramfs() error {
	for _, m := range []string{"/proc", "/sys", "/dev"} {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
	// 1. / bound onto a directory of itself.
	if err := os.MkdirAll(newRootDir, 0o700); err != nil {
		return fmt.Errorf("leave initramfs: %w", err)
	}
	if err := unix.Mount("/", newRootDir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("leave initramfs: bind / to %s: %w", newRootDir, err)
	}
	// 2. The bind mount moved onto /, and made the root.
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
