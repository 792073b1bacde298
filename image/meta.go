package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// metaTarget is what setMeta applies an entry's metadata to: an open fd
// (regular files, directories), or a name under a directory (symlinks,
// device nodes and fifos, which berth does not open). An empty name means
// dirfd itself, which may be an O_PATH fd.
type metaTarget struct {
	fd      int // an fd open for reading or writing, or -1
	dirfd   int
	name    string
	symlink bool // no mode to set
	// fresh: created by this unpack with the entry's permission bits (less
	// the umask) and berth's own owner, in a directory without setgid: what
	// already matches needs no syscall.
	fresh bool
	// owned: created by this unpack with berth's own owner, in a directory
	// without setgid, whatever its mode (a directory, made 0700).
	owned bool
}

// setMeta applies an entry's owner (when running as root), xattrs, mode and
// modification time, never following a symlink. The owner goes first:
// chown clears the setuid and setgid bits and security.capability.
func (x *extractor) setMeta(t metaTarget, hdr *tar.Header) error {
	if err := checkOwner(hdr); err != nil {
		return err
	}
	flags := unix.AT_SYMLINK_NOFOLLOW
	if t.name == "" {
		flags = unix.AT_EMPTY_PATH
	}
	perm := uint32(hdr.Mode & 0o7777)
	if x.asRoot && !((t.fresh || t.owned) && hdr.Uid == x.uid && hdr.Gid == x.gid) {
		var err error
		if t.fd >= 0 {
			err = unix.Fchown(t.fd, hdr.Uid, hdr.Gid)
		} else {
			err = unix.Fchownat(t.dirfd, t.name, hdr.Uid, hdr.Gid, flags)
		}
		if err != nil {
			return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
		}
		t.fresh = false
	}
	if t.fd >= 0 && len(hdr.PAXRecords) > 0 {
		x.setXattrs(t.fd, hdr)
	}
	if !t.symlink && !(t.fresh && perm&0o7000 == 0 && perm&processUmask() == 0) {
		var err error
		if t.fd >= 0 {
			err = unix.Fchmod(t.fd, perm)
		} else {
			err = chmodNoFollow(t.dirfd, t.name, perm)
		}
		if err != nil {
			return fmt.Errorf("chmod %#o: %w", perm, err)
		}
	}
	omit := unix.Timespec{Nsec: unix.UTIME_OMIT} // atime: left at extraction time
	ts := []unix.Timespec{omit, unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	var err error
	if t.fd >= 0 {
		err = unix.UtimesNanoAt(t.fd, "", ts, unix.AT_EMPTY_PATH)
	} else {
		err = unix.UtimesNanoAt(t.dirfd, t.name, ts, flags)
	}
	if err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	return nil
}

// chmodNoFollow sets the mode of name under dirfd (dirfd itself when name
// is empty) without following a symlink. It uses fchmod on a real fd and
// fchmodat2 (Linux 6.6) otherwise; on older kernels it opens the file
// O_PATH without following and changes it through /proc/self/fd.
func chmodNoFollow(dirfd int, name string, mode uint32) error {
	if name == "" {
		if err := unix.Fchmod(dirfd, mode); err != unix.EBADF {
			return err // EBADF: an O_PATH fd
		}
		name = "."
	}
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if err != unix.EOPNOTSUPP && err != unix.ENOSYS {
		return err
	}
	return chmodThroughHandle(dirfd, name, mode)
}

// chmodThroughHandle is chmodNoFollow before Linux 6.6: a handle on the
// file itself, never followed, and the mode set through it, so nothing
// swapped in under name between a check and the change can take it.
func chmodThroughHandle(dirfd int, name string, mode uint32) error {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.ELOOP
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// processUmaskInit computes processUmask's value, once.
func processUmaskInit() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Umask:")); ok {
			if m, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o777
}

// processUmaskOnce holds its result: a sync.OnceValue variable would be init
// code run in every berth process; a sync.Once is data.
var processUmaskOnce struct {
	sync.Once
	v uint32
}

// processUmask is the process's umask, read once from /proc/self/status
// (reading it with umask(2) would change it for a moment under other
// threads). When it cannot be read every mode is set explicitly.
func processUmask() uint32 {
	processUmaskOnce.Do(func() { processUmaskOnce.v = processUmaskInit() })
	return processUmaskOnce.v
}

// maxID is the largest user or group id: chown takes 32 bits, and
// 2^32-1 means "leave it as it is" (berth's own owner, root).
const maxID int64 = 1<<32 - 2

// checkOwner refuses owners chown cannot take as they are: cut to 32 bits,
// 2^32 would become root, and whatever reads the header (a policy, the
// user-namespace shift) would see another owner than the file gets.
//
// On 32-bit platforms archive/tar cuts a PAX uid or gid to an int (2^32
// is 0 there): the records themselves are read too. A GNU base-256 id
// is cut the same way with nothing left to read it from: on a 32-bit
// berth such an entry gets the cut owner.
func checkOwner(hdr *tar.Header) error {
	if hdr.Uid < 0 || int64(hdr.Uid) > maxID || hdr.Gid < 0 || int64(hdr.Gid) > maxID {
		return fmt.Errorf("%w: owner %d:%d: ids go from 0 to %d", errBadOwner, hdr.Uid, hdr.Gid, maxID)
	}
	for _, k := range []string{"uid", "gid"} {
		if v, ok := hdr.PAXRecords[k]; ok {
			if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 0 || n > maxID {
				return fmt.Errorf("%w: PAX %s %q: ids go from 0 to %d", errBadOwner, k, v, maxID)
			}
		}
	}
	return nil
}

// errBadOwner marks an entry whose owner no file can have.
var errBadOwner = errors.New("owner out of range")
