package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"berth/mmapfs"

	"golang.org/x/sys/unix"
)

// extractor writes tar entries below a root. Names are checked by
// entryPath, every lookup is confined by root, every file is created with
// O_EXCL or its *at equivalent (an existing non-directory is unlinked first,
// as tar does), and metadata is set on the created fd or with
// AT_SYMLINK_NOFOLLOW, so no entry can make berth follow a symlink.
// Directory metadata is applied last, deepest first, so a read-only
// directory does not block its own children.
//
// The root and the directory list belong to one goroutine (the unpacker's);
// the *At methods touch neither and may run on writer goroutines.
type extractor struct {
	root     *root
	asRoot   bool // apply owners and create device nodes
	uid, gid int  // berth's own, which new files get without a chown
	log      io.Writer
	buf      []byte

	dirs   []dirMeta
	dirIdx map[string]int // rel → index in dirs
	// dirXattrs counts what dirs keeps until finish (names, xattr
	// records, dirMetaFixed each), bounded by maxDirMeta.
	dirXattrs int64
	rootHdr   *tar.Header // the root entry's metadata, once finish applied it

	warnMu sync.Mutex
	warned map[string]bool
}

// dirMeta is the deferred metadata of one directory entry.
type dirMeta struct {
	rel   string
	hdr   *tar.Header
	gone  bool // removed by a later entry
	fresh bool // made by this unpack in a directory without setgid: berth's owner
}

// fileData is a regular file's contents: slices of decoded frames, or a
// reader; with sparse, the reader yields the segments' bytes in order.
type fileData struct {
	chunks [][]byte
	r      io.Reader
	sparse []mmapfs.Segment
}

// Errors for entries refused by type.
var (
	errRootNotDir   = errors.New("the root entry must be a directory (refused)")
	errLinkToDir    = errors.New("hardlink to a directory (refused)")
	errLinkToSelf   = errors.New("hardlink to itself (refused)")
	errDirNotEmpty  = errors.New("cannot replace a non-empty directory")
	errEmptySymlink = errors.New("symlink with an empty target")
)

// newExtractor opens dest (creating it if missing) for extraction, or
// works on its handle when it has one.
func newExtractor(dest destDir, log io.Writer) (*extractor, error) {
	var r *root
	var err error
	if dest.fd >= 0 {
		r, err = openRootFd(dest.fd, dest.path)
	} else {
		r, err = openRoot(dest.path)
	}
	if err != nil {
		return nil, err
	}
	x := newMetaSetter(log)
	x.root, x.dirIdx = r, make(map[string]int)
	return x, nil
}

// copyBuffers recycles the unpacking goroutines' copy buffers between
// unpacks.
var copyBuffers = sync.Pool{New: func() any { return new([256 << 10]byte) }}

// buffer is the copy buffer of the unpacking goroutine, taken on first use
// (an image whose files all lie in frames never needs it) and given back
// by close.
func (x *extractor) buffer() []byte {
	if x.buf == nil {
		x.buf = copyBuffers.Get().(*[256 << 10]byte)[:]
	}
	return x.buf
}

// newMetaSetter returns an extractor that only sets metadata (setMeta),
// on fds its caller opened.
func newMetaSetter(log io.Writer) *extractor {
	if log == nil {
		log = io.Discard
	}
	return &extractor{asRoot: os.Geteuid() == 0, uid: os.Geteuid(), gid: os.Getegid(), log: log, warned: make(map[string]bool)}
}

// close releases the extractor's fds and its buffer.
func (x *extractor) close() {
	x.root.close()
	if x.buf != nil {
		copyBuffers.Put((*[256 << 10]byte)(x.buf))
		x.buf = nil
	}
}

// maxWarnings is the most different warnings an unpack gives: their
// keys carry names from the image, which could otherwise grow the set
// of those given without bound.
const maxWarnings = 256

// warnOnce logs msg the first time key is seen, up to maxWarnings of
// them; then it says once that it gives no more.
func (x *extractor) warnOnce(key, msg string) {
	x.warnMu.Lock()
	defer x.warnMu.Unlock()
	if x.warned[key] {
		return
	}
	if len(x.warned) >= maxWarnings {
		if len(x.warned) == maxWarnings {
			x.warned[""] = true
			fmt.Fprintf(x.log, "berth: unpack: more than %d warnings: no more are given\n", maxWarnings)
		}
		return
	}
	x.warned[key] = true
	fmt.Fprintf(x.log, "berth: unpack: %s\n", msg)
}

// extract writes one entry on the calling goroutine. It returns the file
// bytes written.
func (x *extractor) extract(hdr *tar.Header, rel string, data fileData) (int64, error) {
	x.root.beginEntry()
	if hdr.Typeflag == tar.TypeDir {
		return 0, x.mkdir(rel, hdr)
	}
	if rel == "." {
		return 0, errRootNotDir
	}
	switch hdr.Typeflag {
	case tar.TypeLink:
		return 0, x.hardlink(rel, hdr)
	case tar.TypeXGlobalHeader:
		return 0, nil
	}
	if !supportedType(hdr.Typeflag) {
		x.warnOnce("type "+hdr.Name, fmt.Sprintf("skipping %q: unsupported tar type %q", hdr.Name, hdr.Typeflag))
		return 0, nil
	}
	d, base, err := x.root.parent(rel, true)
	if err != nil {
		return 0, err
	}
	return x.createAt(d, base, rel, hdr, data, false)
}

// supportedType reports whether createAt handles the type.
func supportedType(t byte) bool {
	switch t {
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont, tar.TypeGNUSparse,
		tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return true
	}
	return false
}

// createAt creates a regular file, symlink, device node or fifo named base
// in d. shared says it runs beside other writers: an existing directory in
// its way is then removed without touching the root's cache (the unpacker
// only hands such entries out when no entry of this image named that
// directory).
func (x *extractor) createAt(d dirRef, base, rel string, hdr *tar.Header, data fileData, shared bool) (int64, error) {
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		return 0, x.symlinkAt(d, base, rel, hdr, shared)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return 0, x.mknodAt(d, base, rel, hdr, shared)
	}
	return x.writeFileAt(d, base, rel, hdr, data, shared)
}

// writeFileAt creates a regular file and writes its data.
func (x *extractor) writeFileAt(d dirRef, base, rel string, hdr *tar.Header, data fileData, shared bool) (int64, error) {
	var fd int
	calls := fileCalls(d.mem)
	err := x.create(d.fd, rel, base, shared, func() (err error) {
		fd, err = calls.create(d.fd, base, uint32(hdr.Mode&0o777))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create: %w", err)
	}
	var n int64
	if data.sparse != nil {
		n, err = x.writeSparse(fd, data.sparse, data.r, hdr.Size)
	} else if wt, ok := data.r.(fdWriterTo); ok {
		n, err = wt.writeToFD(fd, calls)
	} else if data.r != nil {
		n, err = x.copyData(fd, data.r, calls)
	} else {
		n, err = writeChunks(fd, data.chunks, calls)
	}
	if err == nil {
		err = x.setMeta(metaTarget{fd: fd, fresh: !d.sgid}, hdr)
	}
	if cerr := unix.Close(fd); err == nil && cerr != nil {
		err = fmt.Errorf("close: %w", cerr)
	}
	return n, err
}

// fdWriterTo is a reader that writes its bytes to a file itself, without
// copying them.
type fdWriterTo interface {
	writeToFD(fd int, calls fileCalls) (int64, error)
}

// writeChunks writes every chunk to fd.
func writeChunks(fd int, chunks [][]byte, calls fileCalls) (int64, error) {
	var total int64
	for _, p := range chunks {
		for len(p) > 0 {
			w, err := calls.write(fd, p)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return total, fmt.Errorf("write: %w", err)
			}
			p = p[w:]
			total += int64(w)
		}
	}
	return total, nil
}

// copyData writes everything data yields to fd.
func (x *extractor) copyData(fd int, data io.Reader, calls fileCalls) (int64, error) {
	var total int64
	buf := x.buffer()
	for {
		n, rerr := data.Read(buf)
		w, err := writeChunks(fd, [][]byte{buf[:n]}, calls)
		total += w
		if err != nil {
			return total, err
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, fmt.Errorf("reading data at byte %d of the file: %w", total, rerr)
		}
	}
}

// symlinkAt creates a symlink; its target is stored, never followed.
func (x *extractor) symlinkAt(d dirRef, base, rel string, hdr *tar.Header, shared bool) error {
	target := hdr.Linkname
	switch {
	case target == "":
		return errEmptySymlink
	case len(target) > maxPathLen:
		return fmt.Errorf("symlink target of %d bytes is longer than PATH_MAX", len(target))
	case strings.IndexByte(target, 0) >= 0:
		return errNulName
	}
	if err := x.create(d.fd, rel, base, shared, func() error { return unix.Symlinkat(target, d.fd, base) }); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	return x.setMeta(metaTarget{fd: -1, dirfd: d.fd, name: base, symlink: true, fresh: !d.sgid}, hdr)
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
	td, tbase, err := x.root.parent(target, false)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(td.fd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("hardlink target %q: %w", target, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hardlink target %q: %w", target, errLinkToDir)
	}
	d, base, err := x.root.parent(rel, true)
	if err != nil {
		return err
	}
	err = x.create(d.fd, rel, base, false, func() error { return unix.Linkat(td.fd, tbase, d.fd, base, 0) })
	if err != nil {
		return fmt.Errorf("link to %q: %w", target, err)
	}
	return nil
}

// mknodAt creates a fifo, or a device node when running as root.
func (x *extractor) mknodAt(d dirRef, base, rel string, hdr *tar.Header, shared bool) error {
	mode, dev := uint32(unix.S_IFIFO), 0
	if hdr.Typeflag != tar.TypeFifo {
		if hdr.Devmajor < 0 || hdr.Devmajor > maxDevMajor || hdr.Devminor < 0 || hdr.Devminor > maxDevMinor {
			return fmt.Errorf("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
		}
		if !x.asRoot {
			x.warnOnce("device "+hdr.Name, fmt.Sprintf("skipping device %q: not running as root", hdr.Name))
			return nil
		}
		mode = unix.S_IFCHR
		if hdr.Typeflag == tar.TypeBlock {
			mode = unix.S_IFBLK
		}
		dev = int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
	}
	perm := uint32(hdr.Mode & 0o777)
	if err := x.create(d.fd, rel, base, shared, func() error { return unix.Mknodat(d.fd, base, mode|perm, dev) }); err != nil {
		return fmt.Errorf("mknod: %w", err)
	}
	return x.setMeta(metaTarget{fd: -1, dirfd: d.fd, name: base, fresh: !d.sgid}, hdr)
}

// create runs mk, and if the name exists, removes it and runs mk once more.
func (x *extractor) create(pfd int, rel, base string, shared bool, mk func() error) error {
	err := mk()
	if err != unix.EEXIST {
		return err
	}
	if err := x.removeExisting(pfd, rel, base, shared); err != nil {
		return err
	}
	return mk()
}

// removeExisting unlinks what is at rel, which may be an empty directory.
// Unless shared, a removed directory is dropped from the root's cache and
// its deferred metadata is cancelled.
func (x *extractor) removeExisting(pfd int, rel, base string, shared bool) error {
	err := unix.Unlinkat(pfd, base, 0)
	if err != unix.EISDIR {
		return err
	}
	switch err = unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err {
	case nil:
		if !shared {
			x.root.forget(rel)
			if i, ok := x.dirIdx[rel]; ok {
				x.dirs[i].gone = true
				delete(x.dirIdx, rel)
			}
		}
		return nil
	case unix.ENOTEMPTY, unix.EEXIST:
		return errDirNotEmpty
	}
	return err
}
