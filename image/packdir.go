package image

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"berth/mmapfs"

	"golang.org/x/sys/unix"
)

// fileID identifies an inode, to find hardlinks.
type fileID struct {
	dev, ino uint64
}

// maxPackDepth is the deepest a packed directory may lie below the root:
// the walk holds one open directory per level, and an unpack refuses a
// path longer than PATH_MAX (4096), which 2048 levels of one-byte names
// already make.
const maxPackDepth = 2048

// packAfterStat, when set (tests), runs after the walk has looked at an
// entry and before it opens it.
var packAfterStat func(rel string)

// dirPacker walks a directory tree into a tar sink through directory
// handles: every entry is looked at and opened relative to its
// directory's fd without following a symlink, and what is recorded is
// what was opened. A tree that changes while it is packed — a container's
// volume, with its processes running — cannot make berth, as root, read a
// file outside it: an entry swapped between the look and the open is an
// error naming it.
type dirPacker struct {
	sink  *tarSink
	log   io.Writer
	skip  fileID // the image being written, should it sit inside the tree
	root  string // for messages
	links map[fileID]string
}

// packDir writes the tree under root to sink in a depth-first walk with each
// directory's entries in byte-wise order. skip is an inode left out (the
// image being written, should it sit inside root). root itself may be a
// symlink to the directory; nothing below it is followed.
func packDir(root string, sink *tarSink, log io.Writer, skip fileID) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", root, err)
	}
	p := &dirPacker{sink: sink, log: log, skip: skip, root: strings.TrimSuffix(root, "/"), links: make(map[fileID]string)}
	return p.dir(os.NewFile(uintptr(fd), root), ".", 0)
}

// show is the path of rel for messages.
func (p *dirPacker) show(rel string) string {
	if rel == "." {
		return p.root
	}
	return p.root + "/" + rel
}

// dir records the directory d (at rel, depth levels below the root), then
// its entries, and closes d.
func (p *dirPacker) dir(d *os.File, rel string, depth int) error {
	defer d.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", p.show(rel), err)
	}
	hdr, err := p.header(int(d.Fd()), rel, &st, "")
	if err != nil {
		return err
	}
	if err := p.sink.add(hdr, nil); err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read directory %s: %w", p.show(rel), err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := p.entry(int(d.Fd()), name, path.Join(rel, name), depth); err != nil {
			return err
		}
	}
	return nil
}

// entry records the entry name of the directory dirfd, at rel.
func (p *dirPacker) entry(dirfd int, name, rel string, depth int) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("lstat %s: %w", p.show(rel), err)
	}
	id := fileID{uint64(st.Dev), st.Ino}
	if id == p.skip {
		return nil
	}
	if packAfterStat != nil {
		packAfterStat(rel)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if depth+1 > maxPackDepth {
			return fmt.Errorf("%s: nested more than %d directories deep", p.show(rel), maxPackDepth)
		}
		d, _, err := openWalked(dirfd, name, p.show(rel), id, true)
		if err != nil {
			return err
		}
		return p.dir(d, rel, depth+1)
	case unix.S_IFREG:
		f, st, err := openWalked(dirfd, name, p.show(rel), id, false)
		if err != nil {
			return err
		}
		defer f.Close()
		hdr, err := p.header(int(f.Fd()), rel, &st, "")
		if err != nil || p.link(hdr, id, uint64(st.Nlink)) || hdr.Size == 0 {
			if err == nil {
				err = p.sink.add(hdr, nil)
			}
			return err
		}
		// Fewer blocks than the size holds: there may be holes.
		return addFile(p.sink, hdr, f, st.Blocks*512 < st.Size, p.show(rel))
	case unix.S_IFLNK:
		target, err := readlinkat(dirfd, name)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", p.show(rel), err)
		}
		hdr, err := p.header(-1, rel, &st, target)
		if err != nil {
			return err
		}
		p.link(hdr, id, uint64(st.Nlink))
		return p.sink.add(hdr, nil)
	default:
		hdr, err := p.header(-1, rel, &st, "")
		if err != nil || hdr == nil {
			if err == nil {
				fmt.Fprintf(p.log, "berth: pack: skipping socket %s\n", p.show(rel))
			}
			return err
		}
		p.link(hdr, id, uint64(st.Nlink))
		return p.sink.add(hdr, nil)
	}
}

// link turns hdr into a hardlink to the first name of the inode id, when
// one was packed, and reports whether it did.
func (p *dirPacker) link(hdr *tar.Header, id fileID, nlink uint64) bool {
	if nlink <= 1 {
		return false
	}
	if first, ok := p.links[id]; ok {
		hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		return true
	}
	p.links[id] = hdr.Name
	return false
}

// openWalked opens the entry name of dirfd that the walk looked at (id),
// without following a symlink and, for a file, without blocking (a FIFO
// swapped in would otherwise hold the pack for ever). The file opened
// must still be that inode, of the type seen: one swapped for another
// file, a symlink or a FIFO meanwhile is an error. It returns the file
// and its stat.
func openWalked(dirfd int, name, show string, id fileID, dir bool) (*os.File, unix.Stat_t, error) {
	var st unix.Stat_t
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	want := uint32(unix.S_IFREG)
	if dir {
		flags, want = flags|unix.O_DIRECTORY, unix.S_IFDIR
	} else {
		flags |= unix.O_NONBLOCK
	}
	fd, err := unix.Openat(dirfd, name, flags, 0)
	if err == unix.ELOOP || err == unix.ENOTDIR {
		return nil, st, fmt.Errorf("%s: changed while the tree was packed (no longer the %s walked)", show, kindName(dir))
	}
	if err != nil {
		return nil, st, fmt.Errorf("open %s: %w", show, err)
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, st, fmt.Errorf("stat %s: %w", show, err)
	}
	if st.Mode&unix.S_IFMT != want || (fileID{uint64(st.Dev), st.Ino}) != id {
		unix.Close(fd)
		return nil, st, fmt.Errorf("%s: changed while the tree was packed (no longer the %s walked)", show, kindName(dir))
	}
	return os.NewFile(uintptr(fd), show), st, nil
}

func kindName(dir bool) string {
	if dir {
		return "directory"
	}
	return "regular file"
}

// readlinkat returns the target of the symlink name in dirfd.
func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size >= unix.PathMax {
			return "", unix.ENAMETOOLONG
		}
	}
}

// addFile writes a regular file's header and the contents of f, the file
// opened for it: as a sparse file when it has holes.
func addFile(sink *tarSink, hdr *tar.Header, f *os.File, holes bool, show string) error {
	var segs []mmapfs.Segment
	var err error
	if holes {
		if segs, err = fileSegments(f, hdr.Size); err != nil {
			return fmt.Errorf("%s: %w", show, err)
		}
	}
	if segs != nil {
		err = sink.addSparse(hdr, segmentReader(f, segs), segs)
	} else {
		err = sink.add(hdr, f)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", show, err)
	}
	return nil
}

// header builds the tar header of one entry at rel from its stat st; fd,
// for a regular file or a directory, is its handle, whose extended
// attributes it records; target is a symlink's. nil means a socket,
// which tar cannot hold.
func (p *dirPacker) header(fd int, rel string, st *unix.Stat_t, target string) (*tar.Header, error) {
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)),
	}
	if fd >= 0 {
		x, err := readXattrs(fd)
		if err != nil {
			return nil, fmt.Errorf("%s: reading extended attributes: %w", p.show(rel), err)
		}
		hdr.PAXRecords = x
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		if rel == "." {
			hdr.Name = "./"
		} else {
			hdr.Name = rel + "/"
		}
	case unix.S_IFLNK:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(uint64(st.Rdev)))
		hdr.Devminor = int64(unix.Minor(uint64(st.Rdev)))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		return nil, nil
	default:
		return nil, fmt.Errorf("%s: unsupported file type %#o", p.show(rel), st.Mode&unix.S_IFMT)
	}
	return hdr, nil
}
