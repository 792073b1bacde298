package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// maxCachedDirs bounds the directory fds held open at once. Tar streams
// visit directories depth first, so a small cache catches nearly every
// lookup; when it fills up it is simply emptied.
const maxCachedDirs = 512

// errThroughSymlink reports an entry whose path goes through a symlink.
var errThroughSymlink = errors.New("path goes through a symlink or a non-directory (refused)")

// dirRef is an O_PATH fd of a directory below the root, whether new
// entries in it take its group (its setgid bit is set), so that an owner
// equal to berth's own still needs a chown, and whether it lies on a
// filesystem in memory (memwrite.go).
type dirRef struct {
	fd   int
	sgid bool
	mem  bool
	// implicit is set in root.made for a directory made for an entry
	// that named no parent, until the directory's own entry comes.
	implicit bool
}

// root is the destination directory, held as an O_PATH fd, with a cache of
// O_PATH fds of the directories below it that entries were written into.
// It is used by one goroutine; the fds it hands out stay valid until the
// next beginEntry.
//
// Every lookup opens one component at a time from a cached parent with
// openat2(RESOLVE_IN_ROOT|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS), so the
// kernel refuses any path that leaves the root or passes through a symlink,
// whoever created it. On kernels before 5.6 (no openat2) the same single
// component is opened with openat(O_NOFOLLOW|O_DIRECTORY), which refuses a
// symlink just the same: a single component without "/" or ".." cannot
// leave its parent. Entry names never hold ".." (entryPath refuses them),
// so a cached fd is always the directory of that name unless an entry
// removed it, and removals drop it from the cache (forget).
type root struct {
	path string
	dir0 dirRef
	dirs map[string]dirRef // clean relative path → O_PATH fd
	// made holds the directories this unpack created, with their setgid
	// bit and filesystem (their parent's): opening one needs no fstat to
	// learn them.
	made map[string]dirRef
	dev  uint64 // the root's device: directories on it share dir0.mem
	// implicit counts the parents made for entries that name none and
	// whose own entries have not come (an image's layers emit directories
	// last), which count as entries: with entries (the entries so far, when
	// set) they stay within entryLimit, so a few entries of deep paths
	// cannot make millions of directories.
	implicit   int
	entries    *int
	entryLimit int
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
	return newRoot(fd, dest)
}

// openRootFd opens the root at the directory handle dirfd (its own
// O_PATH handle of it: dirfd stays the caller's); dest is for messages.
// Nothing is looked up by path: the root is the directory dirfd is,
// wherever it was moved.
func openRootFd(dirfd int, dest string) (*root, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dest, err)
	}
	return newRoot(fd, dest)
}

// newRoot wraps fd, an O_PATH handle of the root directory dest, which it
// takes over.
func newRoot(fd int, dest string) (*root, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat %s: %w", dest, err)
	}
	r := &root{path: dest, dirs: make(map[string]dirRef), made: make(map[string]dirRef), dev: st.Dev}
	r.dir0 = dirRef{fd: fd, sgid: st.Mode&unix.S_ISGID != 0, mem: inMemory(fd)}
	return r, nil
}

// statDir wraps fd, a directory this unpack did not make, learning its
// setgid bit and, when it is a mount point, its filesystem.
func (r *root) statDir(fd int) (dirRef, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return dirRef{fd: -1}, err
	}
	mem := r.dir0.mem
	if st.Dev != r.dev {
		mem = inMemory(fd)
	}
	return dirRef{fd: fd, sgid: st.Mode&unix.S_ISGID != 0, mem: mem}, nil
}

// close releases every fd.
func (r *root) close() {
	r.flush()
	if r.dir0.fd >= 0 {
		unix.Close(r.dir0.fd)
		r.dir0.fd = -1
	}
}

// flush closes the cached directory fds.
func (r *root) flush() {
	for p, d := range r.dirs {
		unix.Close(d.fd)
		delete(r.dirs, p)
	}
}

// pending is how many directories made for entries below them still wait
// for their own entries, the directory hdr is (at rel) not counted: it
// takes its place as the entry.
func (r *root) pending(rel string, hdr *tar.Header) int {
	if hdr.Typeflag == tar.TypeDir {
		if ref, ok := r.made[rel]; ok && ref.implicit {
			return r.implicit - 1
		}
	}
	return r.implicit
}

// full reports that the cache would be emptied by the next beginEntry.
func (r *root) full() bool { return len(r.dirs) >= maxCachedDirs }

// beginEntry is called once per entry before its lookups: fds returned by
// dir stay valid until the next beginEntry that finds the cache full.
func (r *root) beginEntry() {
	if r.full() {
		r.flush()
	}
}

// dir returns directory rel ("." is the root). With create, missing
// directories on the way are made with mode 0755, as tar does for parents
// an archive does not list.
func (r *root) dir(rel string, create bool) (dirRef, error) {
	if rel == "." {
		return r.dir0, nil
	}
	if d, ok := r.dirs[rel]; ok {
		return d, nil
	}
	parent, err := r.dir(path.Dir(rel), create)
	if err != nil {
		return dirRef{}, err
	}
	base := path.Base(rel)
	fd, err := openDirAt(parent.fd, base)
	if err == unix.ENOENT && create {
		// The entries so far, this one (counted once it is written), the
		// directories made and this one.
		if r.entries != nil && *r.entries+1+r.implicit+1 > r.entryLimit {
			return dirRef{}, fmt.Errorf("%s: %w: over the limit of %d, the directories made for entries that name no parent included", rel, errTooManyEntries, r.entryLimit)
		}
		if err = unix.Mkdirat(parent.fd, base, 0o755); err == nil || err == unix.EEXIST {
			if err == nil {
				r.implicit++
				r.made[rel] = dirRef{sgid: parent.sgid, mem: parent.mem, implicit: true} // mkdir in a setgid directory makes a setgid one
			}
			fd, err = openDirAt(parent.fd, base)
		}
	}
	switch err {
	case nil:
	case unix.ELOOP, unix.ENOTDIR, unix.EXDEV:
		return dirRef{}, fmt.Errorf("%s: %w", rel, errThroughSymlink)
	default:
		return dirRef{}, fmt.Errorf("%s: %w", rel, err)
	}
	ref, made := r.made[rel]
	ref.fd = fd
	if !made {
		if ref, err = r.statDir(fd); err != nil {
			unix.Close(fd)
			return dirRef{}, fmt.Errorf("%s: %w", rel, err)
		}
	}
	r.dirs[rel] = ref
	return ref, nil
}

// noOpenat2 is set once openat2 has returned ENOSYS (Linux < 5.6, or a
// seccomp filter that hides it); tests set it to exercise the fallback.
var noOpenat2 atomic.Bool

// openDirAt opens the single component name under parent as an O_PATH
// directory fd, refusing symlinks and anything outside parent.
func openDirAt(parent int, name string) (int, error) {
	if name == "" || name == "." || name == ".." || strings.IndexByte(name, '/') >= 0 {
		return -1, unix.EXDEV // never produced by entryPath; refused all the same
	}
	if !noOpenat2.Load() {
		how := unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		}
		for {
			fd, err := unix.Openat2(parent, name, &how)
			if err == unix.ENOSYS {
				noOpenat2.Store(true)
				break
			}
			if err != unix.EINTR && err != unix.EAGAIN {
				return fd, err
			}
		}
	}
	for {
		fd, err := unix.Openat(parent, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// forget drops rel and everything below it from the cache, after rel was
// removed.
func (r *root) forget(rel string) {
	prefix := rel + "/"
	for p, d := range r.dirs {
		if p == rel || strings.HasPrefix(p, prefix) {
			unix.Close(d.fd)
			delete(r.dirs, p)
		}
	}
	// Only empty directories are removed: whatever this unpack made below
	// rel was removed, and forgotten, before.
	if r.made[rel].implicit {
		r.implicit--
	}
	delete(r.made, rel)
}

// parent returns rel's parent directory and rel's last component.
func (r *root) parent(rel string, create bool) (dirRef, string, error) {
	d, err := r.dir(path.Dir(rel), create)
	return d, path.Base(rel), err
}
