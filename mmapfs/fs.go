package mmapfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// FS is a read-only io/fs.FS over a memory-mapped berth image: names and
// metadata come from the image's index, file data from the zstd frames that
// hold it, decoded on demand into a small bounded cache (through windows
// where the mapping is windowed: see Mapping). It is safe for
// concurrent use. Symlinks are followed inside the image only: an absolute
// target starts at the image's root, and ".." stops at it, as in a chroot.
// Hardlinks read as the file they link to.
type FS struct {
	m     *Mapping
	table *SeekTable
	ix    *Index
	dec   *zstd.Decoder
	cache *frameCache
}

// Options tune OpenFS; zero fields take defaults.
type Options struct {
	// CacheBytes bounds the decoded frames kept; default 16 MiB (and never
	// less than one frame).
	CacheBytes int64
	// MaxFrame is the largest decompressed frame accepted; default 32 MiB.
	MaxFrame int64
	// MaxWindow is the largest zstd window accepted; default MaxFrame (a
	// frame needs no window beyond its own size).
	MaxWindow uint64
}

// ErrNoIndex reports an image without a berth index: another zstd or tar
// file, or a berth image from before the index existed.
var ErrNoIndex = errors.New("no berth index (not a berth image, or packed by an older berth: repack it with `berth image pack`)")

const maxSymlinks = 40 // as Linux's MAXSYMLINKS

// OpenFS maps the berth image at path and reads its seek table and index.
func OpenFS(path string, opts Options) (*FS, error) {
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = 16 << 20
	}
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = 32 << 20
	}
	if opts.MaxWindow == 0 {
		opts.MaxWindow = uint64(opts.MaxFrame)
	}
	m, err := Map(path)
	if err != nil {
		return nil, err
	}
	m.Advise(AdviseRandom)
	f := &FS{m: m}
	if err := f.load(); err != nil {
		m.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if f.table.MaxFrame() > opts.MaxFrame {
		m.Close()
		return nil, fmt.Errorf("open %s: a frame of %d bytes is over the %d-byte limit", path, f.table.MaxFrame(), opts.MaxFrame)
	}
	if f.dec, err = NewDecoder(opts.MaxFrame, opts.MaxWindow, 0); err != nil {
		m.Close()
		return nil, err
	}
	f.cache = newFrameCache(max(opts.CacheBytes, f.table.MaxFrame()))
	return f, nil
}

// load parses the seek table and the index and checks every entry's data
// lies inside the stream.
func (f *FS) load() error {
	t, err := ParseSeekTable(f.m, f.m.Size())
	if err != nil {
		return err
	}
	f.table = t
	for _, s := range t.Skippable {
		if s.Magic == IndexFrameMagic {
			if f.ix, err = f.parseIndex(s.Payload); err != nil {
				return err
			}
		}
	}
	if f.ix == nil {
		return ErrNoIndex
	}
	if f.ix.StreamSize != t.Size {
		return fmt.Errorf("%w: stream of %d bytes, the seek table says %d", ErrIndex, f.ix.StreamSize, t.Size)
	}
	for i, e := range f.ix.Entries {
		if e.Type != TypeReg {
			continue
		}
		if int(e.Frame) >= len(t.Frames) || e.Offset > t.Frames[e.Frame].DSize ||
			t.Starts[e.Frame]+int64(e.Offset)+e.StreamBytes() > t.Size {
			return fmt.Errorf("%w: entry %q: data at frame %d offset %d, %d bytes, is outside the stream",
				ErrIndex, f.ix.Path(i), e.Frame, e.Offset, e.StreamBytes())
		}
	}
	return nil
}

// parseIndex parses the index whose payload is the file range p, through
// a view of the mapping.
func (f *FS) parseIndex(p [2]int64) (ix *Index, err error) {
	v, err := f.m.view(p[0], p[1]-p[0])
	if err != nil {
		return nil, err
	}
	defer v.close()
	err = Guard(func() error {
		ix, err = ParseIndex(v.b)
		return err
	})
	return ix, err
}

// Close unmaps the image; files opened from it must not be used after.
func (f *FS) Close() error {
	f.dec.Close()
	return f.m.Close()
}

// Index is the image's parsed index.
func (f *FS) Index() *Index { return f.ix }

// SeekTable is the image's parsed seek table.
func (f *FS) SeekTable() *SeekTable { return f.table }

// resolve finds the entry name refers to, following symlinks in every
// component and, with followLast, in the last one; hardlinks are returned
// as they are.
func (f *FS) resolve(op, name string, followLast bool) (int, error) {
	if !fs.ValidPath(name) {
		return 0, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	cur, links := 0, 0
	comps := strings.Split(name, "/")
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..": // only from symlink targets: fs.ValidPath refuses it
			cur = int(f.ix.Entries[cur].Parent)
			continue
		}
		if f.ix.Entries[cur].Type != TypeDir {
			return 0, &fs.PathError{Op: op, Path: name, Err: errNotDir}
		}
		j := f.ix.Lookup(cur, c)
		if j < 0 {
			return 0, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		e := &f.ix.Entries[j]
		if e.Type == TypeSymlink && (len(comps) > 0 || followLast) {
			if links++; links > maxSymlinks {
				return 0, &fs.PathError{Op: op, Path: name, Err: errLoop}
			}
			if strings.HasPrefix(e.Link, "/") {
				cur = 0
			}
			comps = append(strings.Split(e.Link, "/"), comps...)
			continue
		}
		cur = j
	}
	return cur, nil
}

var (
	errNotDir = errors.New("not a directory")
	errLoop   = errors.New("too many levels of symbolic links")
)

// dataEntry returns the entry whose data and metadata a path shows: i
// itself, or for a hardlink the entry it links to.
func (f *FS) dataEntry(op, name string, i int) (int, error) {
	for hops := 0; f.ix.Entries[i].Type == TypeLink; hops++ {
		if hops > maxSymlinks {
			return 0, &fs.PathError{Op: op, Path: name, Err: errLoop}
		}
		target := path.Clean(f.ix.Entries[i].Link)
		j, err := f.resolve(op, strings.TrimPrefix(target, "/"), true)
		if err != nil {
			return 0, &fs.PathError{Op: op, Path: name, Err: fmt.Errorf("hardlink target %q: %w", target, errors.Unwrap(err))}
		}
		i = j
	}
	return i, nil
}

// Open opens the named file, following symlinks.
func (f *FS) Open(name string) (fs.File, error) {
	i, err := f.resolve("open", name, true)
	if err == nil {
		i, err = f.dataEntry("open", name, i)
	}
	if err != nil {
		return nil, err
	}
	info := f.info(name, i)
	if f.ix.Entries[i].Type == TypeDir {
		return &dir{fs: f, info: info, index: i}, nil
	}
	file, err := f.openData(info, i)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return file, nil
}

// Stat describes the named file, following symlinks.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	i, err := f.resolve("stat", name, true)
	if err == nil {
		i, err = f.dataEntry("stat", name, i)
	}
	if err != nil {
		return nil, err
	}
	return f.info(name, i), nil
}

// Lstat describes the named file without following a final symlink.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	i, err := f.resolve("lstat", name, false)
	if err == nil {
		i, err = f.dataEntry("lstat", name, i)
	}
	if err != nil {
		return nil, err
	}
	return f.info(name, i), nil
}

// ReadLink returns a symlink's target.
func (f *FS) ReadLink(name string) (string, error) {
	i, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if e := f.ix.Entries[i]; e.Type == TypeSymlink {
		return e.Link, nil
	}
	return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
}

// ReadDir lists the named directory, sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	i, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if f.ix.Entries[i].Type != TypeDir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	return f.dirEntries(i, 0, -1), nil
}

// MaxReadFile is the largest file ReadFile reads whole: a few bytes of an
// image can claim a file of exabytes (a sparse one reads as zeros). Open
// a larger one and read it in parts.
const MaxReadFile = 1 << 30

// ReadFile returns the named file's contents, at most MaxReadFile bytes.
// Its buffer grows with what is read, not with the size the image claims.
func (f *FS) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	r, ok := file.(*File)
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	if r.size > MaxReadFile {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%d bytes, more than %d to read whole", r.size, MaxReadFile)}
	}
	return io.ReadAll(io.NewSectionReader(r, 0, r.size))
}

// dirEntries returns up to n (all when n < 0) entries of directory d,
// starting at its child number from.
func (f *FS) dirEntries(d, from, n int) []fs.DirEntry {
	lo, hi := f.ix.Children(d)
	lo += from
	if n >= 0 && hi-lo > n {
		hi = lo + n
	}
	out := make([]fs.DirEntry, 0, max(hi-lo, 0))
	for j := lo; j < hi; j++ {
		k := j
		if data, err := f.dataEntry("readdir", f.ix.Entries[j].Name, j); err == nil {
			k = data
		}
		info := f.info(f.ix.Entries[j].Name, k)
		out = append(out, fs.FileInfoToDirEntry(info))
	}
	return out
}

// Interface checks.
var (
	_ fs.ReadDirFS   = (*FS)(nil)
	_ fs.ReadFileFS  = (*FS)(nil)
	_ fs.StatFS      = (*FS)(nil)
	_ fs.ReadLinkFS  = (*FS)(nil)
	_ fs.ReadDirFile = (*dir)(nil)
)
