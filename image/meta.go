package image

import (
	"archive/tar"
	"fmt"

	"golang.org/x/sys/unix"
)

// setMeta applies an entry's owner (when running as root), mode (when
// chmod; symlinks have none) and modification time to name under dirfd,
// never following a symlink. An empty name means dirfd itself, which may be
// an O_PATH fd. The owner goes first: chown clears setuid and setgid bits.
func (x *extractor) setMeta(dirfd int, name string, hdr *tar.Header, chmod bool) error {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags = unix.AT_EMPTY_PATH
	}
	if x.asRoot {
		if err := unix.Fchownat(dirfd, name, hdr.Uid, hdr.Gid, flags); err != nil {
			return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
		}
	}
	if chmod {
		if err := chmodNoFollow(dirfd, name, uint32(hdr.Mode&0o7777)); err != nil {
			return fmt.Errorf("chmod %#o: %w", hdr.Mode&0o7777, err)
		}
	}
	mt := hdr.ModTime
	omit := unix.NsecToTimespec(0)
	omit.Nsec = unix.UTIME_OMIT // atime: left at extraction time
	ts := []unix.Timespec{omit, unix.NsecToTimespec(mt.UnixNano())}
	if err := unix.UtimesNanoAt(dirfd, name, ts, flags); err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	return nil
}

// chmodNoFollow sets the mode of name under dirfd (dirfd itself when name
// is empty) without following a symlink. It uses fchmod on a real fd and
// fchmodat2 (Linux 6.6) otherwise; on older kernels it opens a directory
// with O_NOFOLLOW and fchmods it, or checks a special file is not a symlink
// before a plain fchmodat.
func chmodNoFollow(dirfd int, name string, mode uint32) error {
	if name == "" {
		if err := unix.Fchmod(dirfd, mode); err != unix.EBADF {
			return err // EBADF: an O_PATH fd
		}
		name = "."
	}
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return unix.ELOOP
	case unix.S_IFDIR:
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Fchmod(fd, mode)
	}
	return unix.Fchmodat(dirfd, name, mode, 0)
}
