package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Unpack into DIR, all or nothing. Where DIR is missing or empty, the tree
// is unpacked into a staging directory on DIR's filesystem, synced, and
// only then put in place:
//
//   - rename: DIR is missing, or an empty directory that is not a mount
//     point: the staging directory is made beside DIR and its tree renamed
//     onto DIR in one rename(2), which replaces an empty directory. A kill
//     or power loss at any point leaves DIR as it was or complete.
//   - inside: DIR is an empty mount point (or berth's working directory),
//     which cannot be renamed onto: the staging directory is made inside
//     DIR (hidden, .berth-unpack-*) and the tree's top-level entries are
//     moved into DIR one rename each, the root entry's metadata applied to
//     DIR itself. Before the first move the staging directory gets a
//     journal of the names it will move; a kill or power loss during the
//     moves leaves part of them in DIR, and the next unpack into DIR
//     removes them with the staging directory, so DIR is then as it was.
//
// Either way an error removes the staging directory, and a staging
// directory whose owner died (no flock) is removed by the next unpack
// beside or into it. A DIR that holds files already is unpacked into in
// place, as tar does: an error leaves what was written so far.

// stagePrefix names Unpack's staging directories.
const stagePrefix = ".berth-unpack-"

// placement is how an unpack puts its tree in place.
type placement int

const (
	inPlace    placement = iota // DIR holds files: unpacked into directly
	renameOnto                  // staged beside DIR, renamed onto it
	moveInto                    // staged inside DIR, entries moved into it
)

// target is DIR prepared for an unpack.
type target struct {
	dir   string // absolute, symlinks resolved when it exists
	how   placement
	stage *staging // renameOnto, moveInto
	root  string   // where the tree is unpacked
}

// openTarget decides how to unpack into dest, removes stale staging
// directories, and creates this unpack's.
func openTarget(dest string) (*target, error) {
	dir, err := filepath.Abs(dest)
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var st unix.Stat_t
	switch err := unix.Lstat(dir, &st); {
	case err == unix.ENOENT:
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		return stageBeside(&target{dir: dir, how: renameOnto}, nil)
	case err != nil:
		return nil, err
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return nil, fmt.Errorf("%s exists and is not a directory", dir)
	}
	t := &target{dir: dir, root: dir}
	unlock, err := lockPath(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cleanParent(dir)
	live, err := removeStale(dir, stagePrefix, true)
	if err != nil {
		return nil, err
	}
	if live {
		return nil, fmt.Errorf("%s: another unpack into it is in progress", dir)
	}
	if empty, err := isEmpty(dir); err != nil || !empty {
		return t, err // inPlace
	}
	inside, err := mustStageInside(dir)
	if err != nil {
		return nil, err
	}
	if !inside {
		t.how = renameOnto
		bt, err := stageBeside(t, &st)
		if err == nil || !(errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EROFS)) {
			return bt, err
		}
		// The parent is not ours to write: stage inside instead.
	}
	t.how = moveInto
	if t.stage, err = newStaging(dir, stagePrefix); err != nil {
		return nil, err
	}
	t.root = filepath.Join(t.stage.path, "root")
	if err := unix.Mkdir(t.root, 0o700); err != nil {
		t.stage.remove()
		return nil, err
	}
	return t, nil
}

// cleanParent removes what a dead unpack beside DIR left in DIR's parent
// (when it may: the parent may not be ours to write).
func cleanParent(dir string) {
	parent := filepath.Dir(dir)
	if parent == dir { // "/"
		return
	}
	if unlock, err := lockPath(parent); err == nil {
		removeStale(parent, stagePrefix, false)
		unlock()
	}
}

// stageBeside creates the staging directory in DIR's parent; the tree's
// root gets the mode and owner of the empty DIR it replaces (old), or a
// new directory's.
func stageBeside(t *target, old *unix.Stat_t) (*target, error) {
	parent := filepath.Dir(t.dir)
	unlock, err := lockPath(parent)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := removeStale(parent, stagePrefix, false); err != nil {
		return nil, err
	}
	if t.stage, err = newStaging(parent, stagePrefix); err != nil {
		return nil, err
	}
	t.root = filepath.Join(t.stage.path, "root")
	err = unix.Mkdir(t.root, 0o755) // less the umask, as mkdir(1)
	if err == nil && old != nil {
		err = os.Chmod(t.root, os.FileMode(old.Mode&0o777)|modeBits(old.Mode))
		if err == nil && os.Geteuid() == 0 {
			err = os.Lchown(t.root, int(old.Uid), int(old.Gid))
		}
	}
	if err != nil {
		t.stage.remove()
		return nil, err
	}
	return t, nil
}

// modeBits converts the setuid, setgid and sticky bits of a stat mode.
func modeBits(m uint32) os.FileMode {
	var out os.FileMode
	for bit, mode := range map[uint32]os.FileMode{unix.S_ISUID: os.ModeSetuid, unix.S_ISGID: os.ModeSetgid, unix.S_ISVTX: os.ModeSticky} {
		if m&bit != 0 {
			out |= mode
		}
	}
	return out
}

// mustStageInside reports whether DIR cannot be renamed onto: a mount
// point (statx's mount-root attribute, or a device other than its
// parent's), or this process's working directory.
func mustStageInside(dir string) (bool, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &stx); err != nil {
		return false, err
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return true, nil
	}
	var st, parent, cwd unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return false, err
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil || st.Dev != parent.Dev || dir == "/" {
		return true, nil
	}
	return unix.Stat(".", &cwd) == nil && cwd.Dev == st.Dev && cwd.Ino == st.Ino, nil
}

// lockPath flocks a directory exclusively and returns the unlock.
func lockPath(dir string) (func(), error) {
	fd, err := lockDir(dir, unix.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}

// isEmpty reports whether a directory has no entries.
func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return false, err
}

// commit puts a finished tree in place; rootHdr is the image's root
// entry, nil when it has none.
func (t *target) commit(rootHdr *tar.Header, log io.Writer) error {
	switch t.how {
	case renameOnto:
		return t.commitRename()
	case moveInto:
		return t.commitInside(rootHdr, log)
	}
	return nil
}

// abort removes what an unpack that failed staged.
func (t *target) abort() {
	if t.stage != nil {
		t.stage.remove()
	}
}

// commitRename syncs the staged tree and renames it onto DIR.
func (t *target) commitRename() error {
	if err := t.stage.sync(); err != nil {
		return err
	}
	reached("synced")
	// rename(2) replaces DIR if it is (still) an empty directory.
	if err := unix.Rename(t.root, t.dir); err != nil {
		if err == unix.EEXIST || err == unix.ENOTEMPTY {
			return fmt.Errorf("move the unpacked tree to %s: it is no longer empty (another unpack?)", t.dir)
		}
		return fmt.Errorf("move the unpacked tree to %s: %w", t.dir, err)
	}
	reached("renamed")
	if err := syncDir(filepath.Dir(t.dir)); err != nil {
		return fmt.Errorf("fsync %s: %w", filepath.Dir(t.dir), err)
	}
	return t.stage.remove() // empty now
}

// commitInside syncs the staged tree and moves its entries into DIR,
// under a journal (see removeStale), then gives DIR the root entry's
// metadata. On an error what moved is moved back.
func (t *target) commitInside(rootHdr *tar.Header, log io.Writer) (err error) {
	if err := t.stage.sync(); err != nil {
		return err
	}
	reached("synced")
	f, err := os.Open(t.root)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("list %s: %w", t.root, err)
	}
	if err := writeJournal(t.stage, names); err != nil {
		return err
	}
	rootfd, err := unix.Open(t.root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(rootfd)
	dirfd, err := unix.Open(t.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	moved := 0
	defer func() {
		for _, n := range names[:moved] {
			if err != nil { // put back what moved: DIR stays as it was
				unix.Renameat2(dirfd, n, rootfd, n, unix.RENAME_NOREPLACE)
			}
		}
	}()
	for _, n := range names {
		if err := unix.Renameat2(rootfd, n, dirfd, n, unix.RENAME_NOREPLACE); err != nil {
			return fmt.Errorf("move %s into %s: %w", n, t.dir, err)
		}
		if moved++; moved == 1 {
			reached("moving")
		}
	}
	meta := newMetaSetter(log)
	if rootHdr != nil {
		if err := meta.setMeta(metaTarget{fd: dirfd}, rootHdr); err != nil {
			return fmt.Errorf("%s: the image's root entry: %w", t.dir, err)
		}
	}
	if err := unix.Fsync(dirfd); err != nil {
		return fmt.Errorf("fsync %s: %w", t.dir, err)
	}
	reached("moved")
	if err := unix.Unlink(filepath.Join(t.stage.path, journalName)); err != nil {
		return err
	}
	moved = 0 // committed
	t.stage.remove()
	if rootHdr != nil { // removing the staging directory touched DIR's mtime
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(rootHdr.ModTime.UnixNano())}
		if err := unix.UtimesNanoAt(dirfd, "", ts, unix.AT_EMPTY_PATH); err != nil {
			return fmt.Errorf("%s: set mtime: %w", t.dir, err)
		}
	}
	return unix.Fsync(dirfd)
}

// writeJournal writes the names an inside commit moves into its staging
// directory, durably.
func writeJournal(s *staging, names []string) error {
	p := filepath.Join(s.path, journalName)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strings.Join(names, "\x00"))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Fsync(s.fd)
	}
	if err != nil {
		return fmt.Errorf("journal %s: %w", p, err)
	}
	return nil
}
