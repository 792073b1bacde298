package image

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// maxCachedDirs bounds the directory fds held open at once. Tar streams
// visit directories depth first, so a small cache catches nearly every
// lookup; when it fills up it is simply emptied.
const maxCachedDirs = 512

// errThroughSymlink reports an entry whose path goes through a symlink.
var errThroughSymlink = errors.New("path goes through a symlink or a non-directory (refused)")

// root is the destination directory, held as an O_PATH fd, with a cache of
// O_PATH fds of the directories below it that entries were written into.
//
// Every lookup goes through openat2 with RESOLVE_IN_ROOT, RESOLVE_NO_SYMLINKS
// and RESOLVE_NO_MAGICLINKS, one component at a time from a cached parent,
// so the kernel refuses any path that leaves the root or passes through a
// symlink, whoever created it. Entry names never hold ".." (entryPath
// refuses them), so a cached fd is always the directory of that name unless
// an entry removed it, and removals drop it from the cache (forget).
type root struct {
	path string
	fd   int
	dirs map[string]int // clean relative path → O_PATH fd
}

// openRoot creates dest if it is missing and opens it.
func openRoot(dest string) (*root, error) {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return nil, err
	}
	fd, err := unix.Open(dest, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dest, err)
	}
	return &root{path: dest, fd: fd, dirs: make(map[string]int)}, nil
}

// close releases every fd.
func (r *root) close() {
	r.flush()
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// flush closes the cached directory fds.
func (r *root) flush() {
	for p, fd := range r.dirs {
		unix.Close(fd)
		delete(r.dirs, p)
	}
}

// beginEntry is called once per entry before its lookups: fds returned by
// dir stay valid until the next beginEntry.
func (r *root) beginEntry() {
	if len(r.dirs) >= maxCachedDirs {
		r.flush()
	}
}

// dir returns an O_PATH fd of directory rel ("." is the root). With create,
// missing directories on the way are made with mode 0755, as tar does for
// parents an archive does not list.
func (r *root) dir(rel string, create bool) (int, error) {
	if rel == "." {
		return r.fd, nil
	}
	if fd, ok := r.dirs[rel]; ok {
		return fd, nil
	}
	parent, err := r.dir(path.Dir(rel), create)
	if err != nil {
		return -1, err
	}
	base := path.Base(rel)
	fd, err := openDirAt(parent, base)
	if err == unix.ENOENT && create {
		if err = unix.Mkdirat(parent, base, 0o755); err == nil || err == unix.EEXIST {
			fd, err = openDirAt(parent, base)
		}
	}
	switch err {
	case nil:
	case unix.ELOOP, unix.ENOTDIR, unix.EXDEV:
		return -1, fmt.Errorf("%s: %w", rel, errThroughSymlink)
	default:
		return -1, fmt.Errorf("%s: %w", rel, err)
	}
	r.dirs[rel] = fd
	return fd, nil
}

// openDirAt opens the single component name under parent as an O_PATH
// directory fd, refusing symlinks and anything outside parent.
func openDirAt(parent int, name string) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(parent, name, &how)
		if err != unix.EINTR && err != unix.EAGAIN {
			return fd, err
		}
	}
}

// forget drops rel and everything below it from the cache, after rel was
// removed.
func (r *root) forget(rel string) {
	prefix := rel + "/"
	for p, fd := range r.dirs {
		if p == rel || strings.HasPrefix(p, prefix) {
			unix.Close(fd)
			delete(r.dirs, p)
		}
	}
}

// parent returns the fd of rel's parent directory and rel's last
// component.
func (r *root) parent(rel string, create bool) (int, string, error) {
	fd, err := r.dir(path.Dir(rel), create)
	return fd, path.Base(rel), err
}
