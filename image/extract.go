package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// extractor writes tar entries below a root. Names are checked by
// entryPath, every lookup is confined by root, every file is created with
// O_EXCL or its *at equivalent (an existing non-directory is unlinked first,
// as tar does), and metadata is set on the created fd or with
// AT_SYMLINK_NOFOLLOW, so no entry can make berth follow a symlink. Directory
// metadata is applied last, deepest first, so a read-only directory does not
// block its own children.
type extractor struct {
	root   *root
	asRoot bool // apply owners and create device nodes
	log    io.Writer
	buf    []byte

	dirs   []dirMeta
	dirIdx map[string]int // rel → index in dirs
}

// dirMeta is the deferred metadata of one directory entry.
type dirMeta struct {
	rel      string
	mode     uint32
	uid, gid int
	mtime    time.Time
	gone     bool // removed by a later entry
}

// Errors for entries refused by type.
var (
	errRootNotDir   = errors.New("the root entry must be a directory (refused)")
	errLinkToDir    = errors.New("hardlink to a directory (refused)")
	errLinkToSelf   = errors.New("hardlink to itself (refused)")
	errDirNotEmpty  = errors.New("cannot replace a non-empty directory")
	errEmptySymlink = errors.New("symlink with an empty target")
)

// newExtractor opens dest (creating it if missing) for extraction.
func newExtractor(dest string, log io.Writer) (*extractor, error) {
	r, err := openRoot(dest)
	if err != nil {
		return nil, err
	}
	return &extractor{
		root:   r,
		asRoot: os.Geteuid() == 0,
		log:    log,
		buf:    make([]byte, 1<<20),
		dirIdx: make(map[string]int),
	}, nil
}

// close releases the extractor's fds.
func (x *extractor) close() { x.root.close() }

// extract writes one entry, reading a regular file's data from data. It
// returns the file bytes written.
func (x *extractor) extract(hdr *tar.Header, data io.Reader) (int64, error) {
	rel, err := entryPath(hdr.Name)
	if err != nil {
		return 0, err
	}
	x.root.beginEntry()
	if hdr.Typeflag == tar.TypeDir {
		return 0, x.mkdir(rel, hdr)
	}
	if rel == "." {
		return 0, errRootNotDir
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse:
		return x.writeFile(rel, hdr, data)
	case tar.TypeSymlink:
		return 0, x.symlink(rel, hdr)
	case tar.TypeLink:
		return 0, x.hardlink(rel, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return 0, x.mknod(rel, hdr)
	case tar.TypeXGlobalHeader:
		return 0, nil
	}
	fmt.Fprintf(x.log, "berth: unpack: skipping %q: unsupported tar type %q\n", hdr.Name, hdr.Typeflag)
	return 0, nil
}

// writeFile creates a regular file and writes its data.
func (x *extractor) writeFile(rel string, hdr *tar.Header, data io.Reader) (int64, error) {
	pfd, base, err := x.root.parent(rel, true)
	if err != nil {
		return 0, err
	}
	var fd int
	err = x.create(pfd, rel, base, func() (err error) {
		fd, err = unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create: %w", err)
	}
	n, err := x.copyData(fd, data)
	if err == nil {
		err = x.setMeta(fd, "", hdr, true)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	return n, err
}

// copyData writes everything data yields to fd.
func (x *extractor) copyData(fd int, data io.Reader) (int64, error) {
	var total int64
	for {
		n, rerr := data.Read(x.buf)
		for p := x.buf[:n]; len(p) > 0; {
			w, err := unix.Write(fd, p)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return total, fmt.Errorf("write: %w", err)
			}
			p = p[w:]
			total += int64(w)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, fmt.Errorf("reading data at byte %d of the file: %w", total, rerr)
		}
	}
}

// mkdir creates a directory, or keeps an existing one, and defers its
// metadata.
func (x *extractor) mkdir(rel string, hdr *tar.Header) error {
	if rel != "." {
		pfd, base, err := x.root.parent(rel, true)
		if err != nil {
			return err
		}
		err = unix.Mkdirat(pfd, base, 0o700)
		if err == unix.EEXIST {
			var st unix.Stat_t
			if err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				if err = x.removeExisting(pfd, rel, base); err == nil {
					err = unix.Mkdirat(pfd, base, 0o700)
				}
			}
		}
		if err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	}
	m := dirMeta{rel: rel, mode: uint32(hdr.Mode & 0o7777), uid: hdr.Uid, gid: hdr.Gid, mtime: hdr.ModTime}
	if i, ok := x.dirIdx[rel]; ok {
		x.dirs[i] = m
	} else {
		x.dirIdx[rel] = len(x.dirs)
		x.dirs = append(x.dirs, m)
	}
	return nil
}

// symlink creates a symlink; its target is stored, never followed.
func (x *extractor) symlink(rel string, hdr *tar.Header) error {
	target := hdr.Linkname
	switch {
	case target == "":
		return errEmptySymlink
	case len(target) > maxPathLen:
		return fmt.Errorf("symlink target of %d bytes is longer than PATH_MAX", len(target))
	case strings.IndexByte(target, 0) >= 0:
		return errNulName
	}
	pfd, base, err := x.root.parent(rel, true)
	if err != nil {
		return err
	}
	if err := x.create(pfd, rel, base, func() error { return unix.Symlinkat(target, pfd, base) }); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	return x.setMeta(pfd, base, hdr, false)
}

// hardlink links rel to an earlier entry inside the root.
func (x *extractor) hardlink(rel string, hdr *tar.Header) error {
	target, err := entryPath(hdr.Linkname)
	switch {
	case err != nil:
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	case target == ".":
		return errLinkToDir
	case target == rel:
		return errLinkToSelf
	}
	tpfd, tbase, err := x.root.parent(target, false)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(tpfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("hardlink target %q: %w", target, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hardlink target %q: %w", target, errLinkToDir)
	}
	pfd, base, err := x.root.parent(rel, true)
	if err != nil {
		return err
	}
	err = x.create(pfd, rel, base, func() error { return unix.Linkat(tpfd, tbase, pfd, base, 0) })
	if err != nil {
		return fmt.Errorf("link to %q: %w", target, err)
	}
	return nil
}

// mknod creates a fifo, or a device node when running as root.
func (x *extractor) mknod(rel string, hdr *tar.Header) error {
	mode, dev := uint32(unix.S_IFIFO), 0
	if hdr.Typeflag != tar.TypeFifo {
		if !x.asRoot {
			fmt.Fprintf(x.log, "berth: unpack: skipping device %q: not running as root\n", hdr.Name)
			return nil
		}
		if hdr.Devmajor < 0 || hdr.Devmajor > maxDevMajor || hdr.Devminor < 0 || hdr.Devminor > maxDevMinor {
			return fmt.Errorf("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
		}
		mode = unix.S_IFCHR
		if hdr.Typeflag == tar.TypeBlock {
			mode = unix.S_IFBLK
		}
		dev = int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	}
	pfd, base, err := x.root.parent(rel, true)
	if err != nil {
		return err
	}
	if err := x.create(pfd, rel, base, func() error { return unix.Mknodat(pfd, base, mode|0o600, dev) }); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	return x.setMeta(pfd, base, hdr, true)
}

// create runs mk, and if the name exists, removes it and runs mk once more.
func (x *extractor) create(pfd int, rel, base string, mk func() error) error {
	err := mk()
	if err != unix.EEXIST {
		return err
	}
	if err := x.removeExisting(pfd, rel, base); err != nil {
		return err
	}
	return mk()
}

// removeExisting unlinks what is at rel, which may be an empty directory.
func (x *extractor) removeExisting(pfd int, rel, base string) error {
	err := unix.Unlinkat(pfd, base, 0)
	if err != unix.EISDIR {
		return err
	}
	switch err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err {
	case nil:
		x.root.forget(rel)
		if i, ok := x.dirIdx[rel]; ok {
			x.dirs[i].gone = true
			delete(x.dirIdx, rel)
		}
		return nil
	case unix.ENOTEMPTY, unix.EEXIST:
		return errDirNotEmpty
	}
	return err
}

// finish applies the deferred directory metadata, deepest directories
// first.
func (x *extractor) finish() error {
	depth := func(m dirMeta) int {
		if m.rel == "." {
			return -1
		}
		return strings.Count(m.rel, "/")
	}
	slices.SortStableFunc(x.dirs, func(a, b dirMeta) int { return depth(b) - depth(a) })
	for _, m := range x.dirs {
		if m.gone {
			continue
		}
		x.root.beginEntry()
		hdr := &tar.Header{Mode: int64(m.mode), Uid: m.uid, Gid: m.gid, ModTime: m.mtime}
		var err error
		if m.rel == "." {
			err = x.setMeta(x.root.fd, "", hdr, true)
		} else {
			var pfd int
			var base string
			if pfd, base, err = x.root.parent(m.rel, false); err == nil {
				err = x.setMeta(pfd, base, hdr, true)
			}
		}
		if err != nil {
			return fmt.Errorf("directory %q: %w", m.rel, err)
		}
	}
	x.dirs, x.dirIdx = nil, nil
	return nil
}
