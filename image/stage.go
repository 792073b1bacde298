package image

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"berth/internal/regfile"
)

// Staging directories. An all-or-nothing unpack writes its tree into a
// staging directory on the destination's filesystem, makes it durable
// (syncfs) and only then moves it into place: Cache.Prepare renames it to
// its cache entry, Unpack renames its tree onto DIR or moves the tree's
// entries into DIR. The owner flocks its staging directory for as long as
// it lives, so whoever finds one unlocked (a later unpack, OpenCache)
// knows its owner died and removes it. Creating a staging directory and
// removing stale ones happen under a lock on the directory that holds
// them, so a staging directory is never removed between its creation and
// its owner's flock.

// staging is one staging directory, flock'ed by this process. It is
// reached through fd, and removed relative to holder (a handle of the
// directory that holds it), never by path.
type staging struct {
	path   string // for messages, and for the cache's renames
	holder int    // the directory that holds it, O_RDONLY
	name   string // its name in holder
	fd     int    // O_RDONLY, flock'ed
}

// newStaging creates and flocks a staging directory named prefix* in
// holder; the caller holds holder's lock.
func newStaging(holder, prefix string) (*staging, error) {
	hfd, err := openDirAtNoFollow(unix.AT_FDCWD, holder)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: holder, Err: err}
	}
	defer unix.Close(hfd)
	return newStagingAt(hfd, holder, prefix)
}

// newStagingAt creates and flocks a staging directory named prefix* in
// the directory holder (a handle, duplicated; holderPath for messages);
// the caller holds holder's lock.
func newStagingAt(holder int, holderPath, prefix string) (*staging, error) {
	for range 10000 {
		name := prefix + strconv.FormatUint(uint64(rand.Uint32()), 10)
		err := unix.Mkdirat(holder, name, 0o700)
		if err == unix.EEXIST {
			continue
		}
		p := filepath.Join(holderPath, name)
		if err != nil {
			return nil, fmt.Errorf("create staging directory %s: %w", p, err)
		}
		fd, err := lockAt(holder, name, unix.LOCK_EX)
		if err != nil {
			unix.Unlinkat(holder, name, unix.AT_REMOVEDIR)
			return nil, fmt.Errorf("lock staging directory %s: %w", p, err)
		}
		hfd, err := unix.FcntlInt(uintptr(holder), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			unix.Close(fd)
			unix.Unlinkat(holder, name, unix.AT_REMOVEDIR)
			return nil, fmt.Errorf("staging directory %s: dup: %w", p, err)
		}
		return &staging{path: p, holder: hfd, name: name, fd: fd}, nil
	}
	return nil, fmt.Errorf("create staging directory in %s: no free name", holderPath)
}

// sync makes everything written on the staging directory's filesystem
// durable.
func (s *staging) sync() error {
	if err := unix.Syncfs(s.fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", s.path, err)
	}
	return nil
}

// remove deletes the staging directory and what it holds, through its
// handle while its name in its holder is still this directory, and
// unlocks it. Once something else took the name (the old tree a cache
// entry was exchanged with, a symlink put there by a process that writes
// the holder), that is removed instead, never followed (see removeDirAt).
func (s *staging) remove() error {
	var err error
	if s.fd >= 0 {
		err = removeDirAt(s.holder, s.name, s.fd, s.path)
	}
	s.release()
	return err
}

// release unlocks the staging directory (once moved into place, say).
func (s *staging) release() {
	if s.fd >= 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
	if s.holder >= 0 {
		unix.Close(s.holder)
		s.holder = -1
	}
}

// removeTree removes a tree, making its directories writable first if a
// plain removal fails (a tree unpacked by a non-root user may hold
// read-only directories).
func removeTree(p string) error {
	if err := os.RemoveAll(p); err == nil {
		return nil
	}
	if fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
		chmodTreeAt(fd, 0)
	}
	return os.RemoveAll(p)
}

// maxChmodDepth bounds chmodTreeAt's descent (one fd per level).
const maxChmodDepth = 256

// chmodTreeAt makes the directory fd and those under it 0700, and closes
// fd. It goes down through handles opened without following symlinks, so
// a directory swapped for a symlink anywhere in the tree (by a container
// that writes it) is never followed, however deep.
func chmodTreeAt(fd, depth int) {
	dir := os.NewFile(uintptr(fd), "")
	defer dir.Close()
	_ = unix.Fchmod(fd, 0o700)
	if depth >= maxChmodDepth {
		return
	}
	ents, _ := dir.ReadDir(-1)
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if sub, err := unix.Openat(fd, e.Name(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
			chmodTreeAt(sub, depth+1)
		}
	}
}

// maxJournal bounds a staging directory's journal: the names of the top
// entries of one image, each at most 255 bytes.
const maxJournal = 64 << 20

// journalName is the file in a staging directory listing the entries an
// interrupted commit may have moved out of it: see removeStale.
const journalName = "moving"

// staleAfterJournal, when set (tests), runs once removeStaleOne has read
// a stale staging directory's journal, before it acts on it.
var staleAfterJournal func(holder string)

// removeStale removes the staging directories named prefix* in holder that
// no live process holds, and reports whether live ones remain; see
// removeStaleAt.
func removeStale(holder, prefix string, rollback bool) (live bool, err error) {
	hfd, err := openDirAtNoFollow(unix.AT_FDCWD, holder)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: holder, Err: err}
	}
	defer unix.Close(hfd)
	return removeStaleAt(hfd, holder, prefix, rollback)
}

// removeStaleAt removes the staging directories named prefix* in the
// directory holder (a handle; holderPath for messages) that no live
// process holds, and reports whether live ones remain. A staging
// directory with a journal is an inside commit that was interrupted (see
// commitInside): with rollback, the entries the journal names are removed
// from holder first, leaving holder as it was before that unpack; without,
// such a directory is left alone (it belongs to an unpack into holder
// itself). Everything is reached relative to holder's handle, never
// through a symlink. The caller holds holder's lock.
func removeStaleAt(holder int, holderPath, prefix string, rollback bool) (live bool, err error) {
	d, err := unix.Openat(holder, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: holderPath, Err: err}
	}
	f := os.NewFile(uintptr(d), holderPath)
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return false, err
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) || !e.IsDir() {
			continue
		}
		p := filepath.Join(holderPath, e.Name())
		fd, err := lockAt(holder, e.Name(), unix.LOCK_EX|unix.LOCK_NB)
		if err == unix.EWOULDBLOCK {
			live = true
			continue
		}
		if err != nil {
			continue // gone meanwhile
		}
		err = removeStaleOne(holder, holderPath, e.Name(), fd, rollback)
		unix.Close(fd)
		if err != nil {
			return live, fmt.Errorf("removing stale %s: %w", p, err)
		}
	}
	return live, nil
}

// removeStaleOne removes one stale staging directory, name in holder and
// open as fd, first undoing its interrupted commit when rollback allows.
func removeStaleOne(holder int, holderPath, name string, fd int, rollback bool) error {
	p := filepath.Join(holderPath, name)
	journal, err := readJournalAt(fd, filepath.Join(p, journalName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case !rollback:
		return nil
	default:
		if staleAfterJournal != nil {
			staleAfterJournal(holderPath)
		}
		// The staging tree, if any: a name still in it was not moved.
		tree, err := unix.Openat(fd, "root", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			tree = -1
		} else {
			defer unix.Close(tree)
		}
		for _, b := range bytes.Split(journal, []byte{0}) {
			n := string(b)
			if n == "" || n == "." || n == ".." || strings.Contains(n, "/") || strings.HasPrefix(n, stagePrefix) {
				continue
			}
			var st unix.Stat_t
			if tree >= 0 && unix.Fstatat(tree, n, &st, unix.AT_SYMLINK_NOFOLLOW) != unix.ENOENT {
				continue
			}
			// Moved already: in holder, no longer in the staging tree.
			if err := removeAllAt(holder, n); err != nil {
				return fmt.Errorf("roll back %s: %w", filepath.Join(holderPath, n), err)
			}
		}
	}
	return removeDirAt(holder, name, fd, p)
}

// readJournalAt reads the journal of the staging directory fd, never
// through a symlink; path is for messages.
func readJournalAt(fd int, path string) ([]byte, error) {
	h, err := unix.Openat(fd, journalName, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(h)
	b, err := regfile.Read(h, maxJournal)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// readSmallFile reads the regular file at path, of at most limit bytes:
// a FIFO, a device or a directory there is refused without reading from
// it (it is opened non-blocking), as is a larger file, before more than
// limit+1 bytes are read. follow says whether a symlink at path is
// followed (to a regular file, still).
func readSmallFile(path string, limit int64, follow bool) ([]byte, error) {
	// An O_PATH handle first: opening a device (a tty, a watchdog) can
	// act, so the file is opened for reading only once it is known to be
	// a regular one, through that handle.
	flags := unix.O_PATH | unix.O_CLOEXEC
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	h, err := unix.Open(path, flags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(h)
	b, err := regfile.Read(h, limit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
