package image

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Directory handles. Unpack reaches DIR, its parent's staging directories
// and everything under them only relative to directory fds it opened
// without following symlinks, so a process that can write DIR's parent
// (a container's volume an image is unpacked into) cannot redirect it
// elsewhere by swapping a directory for a symlink once it is open.

// openDirAtNoFollow opens name in dirfd as an O_RDONLY directory fd,
// refusing a symlink (ELOOP) or a non-directory (ENOTDIR).
func openDirAtNoFollow(dirfd int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// lockAt flocks the directory name in dirfd exclusively (how adds
// LOCK_NB), through a handle of its own, and returns that handle.
func lockAt(dirfd int, name string, how int) (int, error) {
	fd, err := openDirAtNoFollow(dirfd, name)
	if err != nil {
		return -1, err
	}
	if err := flock(fd, how); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// lockFd flocks the directory fd exclusively, through a handle of its own
// (flocks belong to open file descriptions), and returns the unlock; path
// is for messages.
func lockFd(fd int, path string) (func(), error) {
	lfd, err := lockAt(fd, ".", unix.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { unix.Close(lfd) }, nil
}

// sameFile reports whether name in dirfd (not followed) is the file fd
// refers to.
func sameFile(dirfd int, name string, fd int) bool {
	var a, b unix.Stat_t
	if unix.Fstatat(dirfd, name, &a, unix.AT_SYMLINK_NOFOLLOW) != nil || unix.Fstat(fd, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// removeDepth bounds how deep removeAllAt descends: a tree an unpack
// made is at most about 2,048 directories deep (PATH_MAX), and a deeper
// one, planted by whoever can write there, would otherwise cost a
// directory fd and stack per level. removeBatch is how many names one
// read takes: a directory of a million entries is not listed whole.
const (
	removeDepth = 4096
	removeBatch = 1024
)

// removeAllAt removes name in dirfd and, when it is a directory, what it
// holds, never following a symlink: each directory is entered through a
// handle opened with O_NOFOLLOW from its parent's, made writable first (a
// tree unpacked by a non-root user may hold read-only directories). A
// missing name is no error. Errors name the path below dirfd.
func removeAllAt(dirfd int, name string) error {
	return removeAt(dirfd, name, name, 0)
}

// RemoveAllAt is removeAllAt for berth's other on-disk state (the
// generation store): name in dirfd and what it holds, never following a
// symlink, at most removeDepth levels deep.
func RemoveAllAt(dirfd int, name string) error { return removeAllAt(dirfd, name) }

// removeAt is removeAllAt of name, at path (for messages) depth levels
// below where it began.
func removeAt(dirfd int, name, path string, depth int) error {
	for try := 0; ; try++ {
		err := unix.Unlinkat(dirfd, name, 0)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EISDIR && err != unix.EPERM || try == 2 {
			return &os.PathError{Op: "unlinkat", Path: path, Err: err}
		}
		if depth >= removeDepth {
			return fmt.Errorf("remove %s: directories nested more than %d deep", path, removeDepth)
		}
		fd, oerr := openDirAtNoFollow(dirfd, name)
		if oerr == unix.ELOOP || oerr == unix.ENOTDIR {
			continue // replaced meanwhile: unlink what is there now
		}
		if oerr != nil {
			return &os.PathError{Op: "openat", Path: path, Err: oerr}
		}
		_ = unix.Fchmod(fd, 0o700)
		err = removeContents(fd, path, depth+1)
		unix.Close(fd)
		if err != nil {
			return err
		}
		if err = unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.ENOTEMPTY && err != unix.ENOTDIR {
			return &os.PathError{Op: "rmdir", Path: path, Err: err}
		}
	}
}

// removeContentsAt removes every entry of the directory fd, as
// removeAllAt does, leaving the directory itself; path is for messages.
func removeContentsAt(fd int, path string) error {
	return removeContents(fd, path, 0)
}

// removeContents is removeContentsAt depth levels down. It reads a batch
// of names, removes them, and reads again from the start (removing while
// reading may skip some) until the directory is empty.
func removeContents(fd int, path string, depth int) error {
	for {
		names, err := readNamesAt(fd, removeBatch)
		if err != nil {
			return &os.PathError{Op: "readdir", Path: path, Err: err}
		}
		if len(names) == 0 {
			return nil
		}
		for _, n := range names {
			if err := removeAt(fd, n, path+"/"+n, depth); err != nil {
				return err
			}
		}
	}
}

// readNamesAt reads up to n names of the directory fd, from its start,
// through a handle of its own.
func readNamesAt(fd, n int) ([]string, error) {
	d, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(d), ".")
	defer f.Close()
	names, err := f.Readdirnames(n)
	if err == io.EOF {
		err = nil
	}
	return names, err
}

// removeDirAt removes the directory at name in dirfd, which fd was opened
// on: while name is still that directory, its contents through fd, then
// name; if something took name meanwhile (a cache entry exchanged with
// it, or a symlink put there by whoever writes dirfd), whatever is at
// name, never followed, and fd's directory is left as it is wherever it
// went. path is for messages.
func removeDirAt(dirfd int, name string, fd int, path string) error {
	if !sameFile(dirfd, name, fd) {
		if err := removeAllAt(dirfd, name); err != nil {
			return fmt.Errorf("remove %s: %w", path, err)
		}
		return nil
	}
	_ = unix.Fchmod(fd, 0o700)
	if err := removeContentsAt(fd, path); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	if !sameFile(dirfd, name, fd) {
		return nil // moved away meanwhile: emptied, and name not ours
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// isEmptyFd reports whether the directory fd has no entries.
func isEmptyFd(fd int) (bool, error) {
	d, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	f := os.NewFile(uintptr(d), ".")
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return false, nil
	}
	if err != nil && err != io.EOF {
		return false, err
	}
	return true, nil
}
