package image

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"berth/mmapfs"

	"golang.org/x/sys/unix"
)

// fileID identifies an inode, to find hardlinks.
type fileID struct {
	dev, ino uint64
}

// packDir writes the tree under root to sink in a depth-first walk with each
// directory's entries in byte-wise order. skip is an inode left out (the
// image being written, should it sit inside root).
func packDir(root string, sink *tarSink, log io.Writer, skip fileID) error {
	links := make(map[fileID]string)
	if !strings.HasSuffix(root, "/") {
		root += "/" // walk the directory even if root is a symlink to it
	}
	return filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", path, err)
		}
		id := fileID{uint64(st.Dev), st.Ino}
		if id == skip {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		hdr, err := headerFromStat(path, filepath.ToSlash(rel), &st)
		if err != nil {
			return err
		}
		if hdr == nil {
			fmt.Fprintf(log, "berth: pack: skipping socket %s\n", path)
			return nil
		}
		if hdr.Typeflag != tar.TypeDir && st.Nlink > 1 {
			if first, ok := links[id]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				links[id] = hdr.Name
			}
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
			return sink.add(hdr, nil)
		}
		// Fewer blocks than the size holds: there may be holes.
		return addFile(sink, hdr, path, st.Blocks*512 < st.Size, id)
	})
}

// addFile writes a regular file's header and contents: as a sparse file
// when it has holes. The file opened must be the one walked (id), still
// a regular file: one swapped for a FIFO meanwhile would block the pack
// for ever (it is opened non-blocking, so it cannot), one swapped for
// another file would not match its header.
func addFile(sink *tarSink, hdr *tar.Header, path string, holes bool, id fileID) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || (fileID{uint64(st.Dev), st.Ino}) != id {
		return fmt.Errorf("%s: changed while the tree was packed (no longer the regular file walked)", path)
	}
	var segs []mmapfs.Segment
	if holes {
		if segs, err = fileSegments(f, hdr.Size); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if segs != nil {
		err = sink.addSparse(hdr, segmentReader(f, segs), segs)
	} else {
		err = sink.add(hdr, f)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// headerFromStat builds the tar header of one file; nil means the file is a
// socket, which tar cannot hold.
func headerFromStat(path, rel string, st *unix.Stat_t) (*tar.Header, error) {
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)),
	}
	if t := st.Mode & unix.S_IFMT; t == unix.S_IFREG || t == unix.S_IFDIR {
		x, err := readXattrs(path)
		if err != nil {
			return nil, fmt.Errorf("%s: reading extended attributes: %w", path, err)
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
		target, err := os.Readlink(path)
		if err != nil {
			return nil, err
		}
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
		return nil, fmt.Errorf("%s: unsupported file type %#o", path, st.Mode&unix.S_IFMT)
	}
	return hdr, nil
}
