package boot

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"berth/internal/mountinfo"
)

// switchedEnv marks the berth that leaveInitramfs re-executed, and carries
// the uptime at which the first berth started.
const switchedEnv = "BERTH_SWITCHED_AT"

// newRootDir is where the tmpfs that becomes / is assembled.
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

// leaveInitramfs moves the root filesystem off the initramfs, as LinuxKit's
// init does: it copies the initramfs into a fresh tmpfs (deleting each file
// once copied, so memory use does not double), moves the tmpfs onto /,
// chroots into it and re-executes berth from there. It returns only on
// error.
func leaveInitramfs(log *Logger, startedAt float64) error {
	self, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("leave initramfs: %w", err)
	}
	// 1. A tmpfs for the new root.
	if err := os.MkdirAll(newRootDir, 0o755); err != nil {
		return fmt.Errorf("leave initramfs: %w", err)
	}
	if err := unix.Mount("rootfs", newRootDir, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("leave initramfs: mount tmpfs at %s: %w", newRootDir, err)
	}
	// 2. Copy the initramfs into it; mounts such as /proc stay behind.
	if err := copyTree("/", newRootDir); err != nil {
		return fmt.Errorf("leave initramfs: %w", err)
	}
	for _, m := range []string{"/proc", "/sys", "/dev"} {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
	// 3. Make the tmpfs the root and run berth again from it.
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
	env := append(os.Environ(), fmt.Sprintf("%s=%.6f", switchedEnv, startedAt))
	err = syscall.Exec(self, os.Args, env)
	return fmt.Errorf("leave initramfs: re-exec %s: %w", self, err)
}

// copyTree copies the tree at src into dst, staying on src's filesystem,
// and removes each copied file from src. Ownership, modes and times are
// kept.
func copyTree(src, dst string) error {
	var rootSt unix.Stat_t
	if err := unix.Lstat(src, &rootSt); err != nil {
		return err
	}
	var dirs []string
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		if st.Dev != rootSt.Dev {
			if d.IsDir() {
				// Another filesystem (the new root itself, /proc): keep
				// only the mount point.
				_ = os.MkdirAll(filepath.Join(dst, path), 0o755)
				return filepath.SkipDir
			}
			return nil
		}
		if path == src {
			return nil
		}
		target := filepath.Join(dst, path)
		if err := copyEntry(path, target, &st); err != nil {
			return fmt.Errorf("copy %s: %w", path, err)
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		} else {
			_ = unix.Unlink(path)
		}
		return nil
	})
	// Directories are emptied by now; remove them deepest first.
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = unix.Rmdir(dirs[i])
	}
	return err
}

// copyEntry copies one file, directory, symlink or node.
func copyEntry(src, dst string, st *unix.Stat_t) error {
	mode := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
	case unix.S_IFREG:
		if err := copyFile(src, dst); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
		return unix.Lchown(dst, int(st.Uid), int(st.Gid))
	default:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	}
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Chmod(dst, mode); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
