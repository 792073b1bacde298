package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Shift maps a tree's owners, for a user namespace whose kernel or
// filesystem cannot idmap a mount: Key names the maps (1-32 of a-z 0-9),
// Map gives a file's owner on the host.
type Shift struct {
	Key string
	Map func(uid, gid uint32) (uint32, uint32, error)
}

// maxShifted bounds the shifted copies one cached image keeps.
const maxShifted = 4

// Shifted returns a copy of the cached tree of digest whose owners are
// shifted by sh: ROOT/sha256-HEX/shifted-KEY/rootfs, made on first use
// (staged, synced, renamed into place) and removed with the image by
// GC. An image keeps at most 4 of them. The tree must be in the cache
// (Prepare); the copy's files are copied, never linked to the tree's.
func (c *Cache) Shifted(digest string, sh Shift) (string, error) {
	if err := checkDigestSyntax(digest); err != nil {
		return "", err
	}
	if sh.Key == "" || len(sh.Key) > 32 || strings.Trim(sh.Key, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		return "", fmt.Errorf("shift key %q: want 1-32 of a-z 0-9", sh.Key)
	}
	defer c.digestLock(digest)()
	unlock, err := c.lockRoot(unix.LOCK_SH)
	if err != nil {
		return "", err
	}
	defer unlock()
	entry := c.entryDir(digest)
	final := filepath.Join(entry, "shifted-"+sh.Key)
	// A symlink at shifted-KEY or its rootfs is not a copy berth made
	// (dropForeign): it is removed and the copy made anew.
	if err := dropForeign(final); err != nil {
		return "", fmt.Errorf("shifted copy of %s: %w", digest, err)
	}
	if st, err := os.Lstat(filepath.Join(final, "rootfs")); err == nil && st.IsDir() {
		return filepath.Join(final, "rootfs"), nil
	}
	if _, err := removeStale(entry, ".shift-staging-", false); err != nil {
		return "", fmt.Errorf("shifted copy of %s: %w", digest, err)
	}
	if old, _ := filepath.Glob(filepath.Join(entry, "shifted-*")); len(old) >= maxShifted {
		return "", fmt.Errorf("shifted copy of %s: the image has %d already, the limit (user namespaces with other maps)", digest, len(old))
	}
	stage, err := newStaging(entry, ".shift-staging-")
	if err != nil {
		return "", fmt.Errorf("shifted copy of %s: %w", digest, err)
	}
	if err := copyShifted(filepath.Join(entry, "rootfs"), filepath.Join(stage.path, "rootfs"), sh.Map); err != nil {
		stage.remove()
		return "", fmt.Errorf("shifted copy of %s: %w", digest, err)
	}
	if err := stage.sync(); err != nil {
		stage.remove()
		return "", err
	}
	if err := unix.Rename(stage.path, final); err != nil {
		stage.remove()
		return "", fmt.Errorf("shifted copy of %s: %w", digest, err)
	}
	stage.release()
	return filepath.Join(final, "rootfs"), syncDir(entry)
}

// copyShifted copies the tree src to dst (which must not exist) with
// owners mapped: modes, times, hard links, symlinks, devices and fifos
// kept; symlinks are never followed.
func copyShifted(src, dst string, shift func(uid, gid uint32) (uint32, uint32, error)) error {
	links := map[[2]uint64]string{}
	var dirs []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		uid, gid, err := shift(st.Uid, st.Gid)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
			id := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[id]; ok {
				return os.Link(first, out)
			}
			links[id] = out
		}
		if err := copyEntry(p, out, &st); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if err := os.Lchown(out, int(uid), int(gid)); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return nil
		}
		if err := unix.Chmod(out, st.Mode&0o7777); err != nil { // after chown, which clears setuid
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			dirs = append(dirs, out) // times once their entries are in
			return nil
		}
		return copyTimes(out, &st)
	})
	for i := len(dirs) - 1; err == nil && i >= 0; i-- {
		var st unix.Stat_t
		rel, _ := filepath.Rel(dst, dirs[i])
		if err = unix.Lstat(filepath.Join(src, rel), &st); err == nil {
			err = copyTimes(dirs[i], &st)
		}
	}
	return err
}

// copyEntry makes out a copy of the entry p whose metadata is st.
func copyEntry(p, out string, st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return os.Mkdir(out, 0o700)
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		return os.Symlink(target, out)
	case unix.S_IFREG:
		in, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer in.Close()
		f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, in); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		return unix.Mknod(out, st.Mode&unix.S_IFMT|0o600, int(st.Rdev))
	}
	return errors.New("unsupported file type")
}

// copyTimes gives out st's access and modification times, without
// following a symlink.
func copyTimes(out string, st *unix.Stat_t) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(unix.AT_FDCWD, out, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// ShiftTree shifts the owners of the tree dir in place, by sh: for a
// private tree (berth run's unpacked image) that cannot be idmapped.
// Symlinks are never followed; setuid and setgid bits, which chown
// clears, are set again.
func ShiftTree(dir string, sh Shift) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		uid, gid, err := sh.Map(st.Uid, st.Gid)
		if err != nil {
			return fmt.Errorf("shift %s: %w", p, err)
		}
		if err := os.Lchown(p, int(uid), int(gid)); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK || st.Mode&(unix.S_ISUID|unix.S_ISGID) == 0 {
			return nil
		}
		return unix.Chmod(p, st.Mode&0o7777)
	})
}
