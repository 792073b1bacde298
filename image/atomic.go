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

// target is DIR prepared for an unpack. DIR's parent is resolved once
// (symlinks in the path the operator gave are followed, as tar -C does)
// and held open; DIR, the staging directory and the tree's root are then
// reached only relative to handles, without following symlinks, so a
// process that can write DIR's parent (a container's volume) cannot
// redirect the unpack by swapping DIR or the staging directory for a
// symlink. DIR found a symlink after that resolution is refused.
type target struct {
	dir    string // absolute, symlinks resolved when it exists; for messages
	parent int    // DIR's parent, O_RDONLY
	name   string // DIR's name in parent ("." for "/")
	dirfd  int    // DIR, O_RDONLY; -1 while missing
	how    placement
	stage  *staging // renameOnto, moveInto
	root   string   // where the tree is unpacked; for messages
	rootfd int      // where the tree is unpacked, O_RDONLY
}

// targetAfterOpen, when set (tests), runs once openTarget has opened
// DIR, before the tree is unpacked.
var targetAfterOpen func(t *target)

// openTarget decides how to unpack into dest, removes stale staging
// directories, and creates this unpack's.
func openTarget(dest string) (*target, error) {
	dir, err := resolveDest(dest)
	if err != nil {
		return nil, err
	}
	t := &target{dir: dir, parent: -1, name: filepath.Base(dir), dirfd: -1, rootfd: -1}
	parent := filepath.Dir(dir)
	if dir == "/" {
		t.name = "."
	}
	if t.parent, err = openDirAtNoFollow(unix.AT_FDCWD, parent); err != nil {
		return nil, fmt.Errorf("open %s: %w", parent, err)
	}
	if err := t.open(); err != nil {
		t.close()
		return nil, err
	}
	if targetAfterOpen != nil {
		targetAfterOpen(t)
	}
	return t, nil
}

// resolveDest makes dest absolute and resolves its symlinks, once; a
// missing DIR gets its parent created and resolved.
func resolveDest(dest string) (string, error) {
	dir, err := filepath.Abs(dest)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		return real, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if to, err := os.Readlink(dir); err == nil { // DIR itself dangles
		return "", fmt.Errorf("%s is a symlink to %s, which does not exist: make that directory, or name another", dir, to)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(parent)
	if err != nil {
		return "", err
	}
	return filepath.Join(real, filepath.Base(dir)), nil
}

// open finds DIR in its parent's handle and prepares the unpack.
func (t *target) open() error {
	var st unix.Stat_t
	switch err := unix.Fstatat(t.parent, t.name, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == unix.ENOENT:
		t.how = renameOnto
		return t.stageBeside(nil)
	case err != nil:
		return fmt.Errorf("stat %s: %w", t.dir, err)
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return fmt.Errorf("%s: is a symlink now (refused: its parent changed while berth resolved it)", t.dir)
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s exists and is not a directory", t.dir)
	}
	dirfd, err := openDirAtNoFollow(t.parent, t.name)
	if err != nil {
		return fmt.Errorf("open %s: %w", t.dir, err)
	}
	t.dirfd = dirfd
	if err := unix.Fstat(dirfd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", t.dir, err)
	}
	unlock, err := lockFd(dirfd, t.dir)
	if err != nil {
		return err
	}
	defer unlock()
	t.cleanParent()
	live, err := removeStaleAt(dirfd, t.dir, stagePrefix, true)
	if err != nil {
		return err
	}
	if live {
		return fmt.Errorf("%s: another unpack into it is in progress", t.dir)
	}
	if empty, err := isEmptyFd(dirfd); err != nil || !empty {
		if err != nil {
			return fmt.Errorf("read %s: %w", t.dir, err)
		}
		t.root = t.dir // inPlace
		if t.rootfd, err = unix.FcntlInt(uintptr(dirfd), unix.F_DUPFD_CLOEXEC, 0); err != nil {
			return fmt.Errorf("dup %s: %w", t.dir, err)
		}
		return nil
	}
	inside, err := t.mustStageInside(dirfd)
	if err != nil {
		return err
	}
	if !inside {
		t.how = renameOnto
		err := t.stageBeside(&st)
		if err == nil || !(errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EROFS)) {
			return err
		}
		// The parent is not ours to write: stage inside instead.
	}
	t.how = moveInto
	if t.stage, err = newStagingAt(dirfd, t.dir, stagePrefix); err != nil {
		return err
	}
	return t.makeRoot(0o700, nil)
}

// makeRoot makes the staging directory's root, where the tree is
// unpacked, with mode perm (less the umask), or old's mode and owner.
func (t *target) makeRoot(perm uint32, old *unix.Stat_t) error {
	t.root = filepath.Join(t.stage.path, "root")
	err := unix.Mkdirat(t.stage.fd, "root", perm)
	if err == nil {
		t.rootfd, err = openDirAtNoFollow(t.stage.fd, "root")
	}
	if err == nil && old != nil {
		err = unix.Fchmod(t.rootfd, old.Mode&0o7777)
		if err == nil && os.Geteuid() == 0 {
			err = unix.Fchown(t.rootfd, int(old.Uid), int(old.Gid))
		}
	}
	if err != nil {
		if t.rootfd >= 0 {
			unix.Close(t.rootfd)
			t.rootfd = -1
		}
		t.stage.remove()
		t.stage = nil
		return fmt.Errorf("staging directory %s: %w", t.root, err)
	}
	return nil
}

// close releases the target's handles.
func (t *target) close() {
	for _, fd := range []*int{&t.parent, &t.dirfd, &t.rootfd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// cleanParent removes what a dead unpack beside DIR left in DIR's parent
// (when it may: the parent may not be ours to write).
func (t *target) cleanParent() {
	if t.dir == "/" {
		return
	}
	if unlock, err := lockFd(t.parent, filepath.Dir(t.dir)); err == nil {
		removeStaleAt(t.parent, filepath.Dir(t.dir), stagePrefix, false)
		unlock()
	}
}

// stageBeside creates the staging directory in DIR's parent; the tree's
// root gets the mode and owner of the empty DIR it replaces (old), or a
// new directory's.
func (t *target) stageBeside(old *unix.Stat_t) error {
	parent := filepath.Dir(t.dir)
	unlock, err := lockFd(t.parent, parent)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := removeStaleAt(t.parent, parent, stagePrefix, false); err != nil {
		return err
	}
	if t.stage, err = newStagingAt(t.parent, parent, stagePrefix); err != nil {
		return err
	}
	return t.makeRoot(0o755, old) // less the umask, as mkdir(1)
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

// mustStageInside reports whether DIR (open as dirfd) cannot be renamed
// onto: a mount point (statx's mount-root attribute, or a device other
// than its parent's), or this process's working directory.
func (t *target) mustStageInside(dirfd int) (bool, error) {
	var stx unix.Statx_t
	if err := unix.Statx(dirfd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS, &stx); err != nil {
		return false, fmt.Errorf("statx %s: %w", t.dir, err)
	}
	if stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return true, nil
	}
	var st, parent, cwd unix.Stat_t
	if err := unix.Fstat(dirfd, &st); err != nil {
		return false, fmt.Errorf("stat %s: %w", t.dir, err)
	}
	if err := unix.Fstat(t.parent, &parent); err != nil || st.Dev != parent.Dev || t.dir == "/" {
		return true, nil
	}
	return unix.Stat(".", &cwd) == nil && cwd.Dev == st.Dev && cwd.Ino == st.Ino, nil
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
	// rename(2) replaces DIR if it is (still) an empty directory; from
	// and to handles, so a symlink put in place of either is not followed.
	if !sameFile(t.stage.fd, "root", t.rootfd) {
		return fmt.Errorf("move the unpacked tree to %s: %s is no longer the tree unpacked", t.dir, t.root)
	}
	if err := unix.Renameat(t.stage.fd, "root", t.parent, t.name); err != nil {
		if err == unix.EEXIST || err == unix.ENOTEMPTY {
			return fmt.Errorf("move the unpacked tree to %s: it is no longer empty (another unpack?)", t.dir)
		}
		if err == unix.ENOTDIR {
			return fmt.Errorf("move the unpacked tree to %s: it is no longer a directory (refused: a symlink is not followed)", t.dir)
		}
		return fmt.Errorf("move the unpacked tree to %s: %w", t.dir, err)
	}
	reached("renamed")
	if err := unix.Fsync(t.parent); err != nil {
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
	rootfd := t.rootfd
	f, err := unix.Openat(rootfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", t.root, err)
	}
	d := os.NewFile(uintptr(f), t.root)
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("list %s: %w", t.root, err)
	}
	if err := writeJournal(t.stage, names); err != nil {
		return err
	}
	dirfd := t.dirfd
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
	if err := unix.Unlinkat(t.stage.fd, journalName, 0); err != nil {
		return fmt.Errorf("remove %s: %w", filepath.Join(t.stage.path, journalName), err)
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
	fd, err := unix.Openat(s.fd, journalName, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("journal %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
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
