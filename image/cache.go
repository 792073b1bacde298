package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/regfile"
)

// DefaultCacheRoot is where boot keeps unpacked images.
const DefaultCacheRoot = "/var/lib/berth/images"

// Cache is a directory of unpacked images, one per digest:
//
//	ROOT/sha256-<hex>/rootfs   a complete, read-only-by-convention tree
//	ROOT/sha256-<hex>/format   the cache format that made it (cacheFormat)
//	ROOT/sha256-<hex>          flock'ed shared by each user of the tree (a
//	                           lease), exclusively to test for users
//	ROOT/sha256-<hex>/rootfs   of an older tree: flock'ed exclusively by
//	                           the Prepare replacing it (lockReplacer)
//	ROOT/.staging-*            an unpack in progress (flock'ed by its owner)
//	ROOT/.trash-*              an entry being removed by GC
//	ROOT/.digests/<hex>        digest memos of image files (see digestMemo)
//	ROOT/.lock                 flock'ed shared by Prepare, exclusively by
//	                           GC and by the cleanup of stale staging and
//	                           trash directories
//
// An entry is unpacked into a staging directory, synced (syncfs) and
// renamed into place in one rename(2), then the root is fsynced: after a
// kill -9 or a power loss at any point the entry is either absent or
// complete, never partial. The directory is named sha256-<hex> rather than
// by the digest itself because ':' separates overlayfs lowerdirs.
type Cache struct {
	Root string

	mu       sync.Mutex
	inflight map[string]*sync.Mutex // digest → held while it is prepared
}

// PrepareOptions tune Prepare; see UnpackOptions for the fields.
type PrepareOptions struct {
	Digest    string // expected digest; anything else is refused before writing
	PublicKey string // require a valid signature by this key (path)
	Signature string // signature file; "" means beside the image
	Platform  string
	Limits    Limits
	Progress  io.Writer
	Log       io.Writer
	// Vouched: the caller vouches that the file at src has Digest — it
	// hashed it as it arrived, into a directory only berth writes (a
	// pulled blob) — so it is neither hashed again nor sealed.
	Vouched bool
}

// Prepared is a ready rootfs.
type Prepared struct {
	Rootfs string // ROOT/sha256-<hex>/rootfs; shared: mount it read-only or under an overlay
	Digest string
	Cached bool // it was there already: nothing was decoded
	// Replaced: the tree there was an older berth's (an older cache
	// format), and was unpacked again in its place.
	Replaced bool
	// Stale says why an older berth's tree is used as it is (a mounted
	// container root uses it, unpacking it again failed, LookupAny); ""
	// when the tree is current.
	Stale string
	Stats Stats // of the unpack; zero when Cached
	// Config is what the image says about running it, read from the
	// same bytes as the digest. A Lookup gives the copy the entry kept
	// when it was unpacked, KeptConfig set; an older berth's entry may
	// have none.
	Config     Config
	KeptConfig bool
	Elapsed    time.Duration
	// Release ends the lease on Rootfs. Until it is called the cache's
	// lock is held shared, so GC (which takes it exclusively, and keeps
	// the trees of mounted overlays) cannot remove the tree before the
	// caller has mounted it, and so is the entry's, so an older berth's
	// tree is not replaced under it (replace). Call it once, after
	// mounting.
	Release func()
}

// OpenCache creates root if needed and removes what interrupted unpacks and
// removals left (staging and trash directories no live process holds).
func OpenCache(root string) (*Cache, error) {
	// The root itself, never what a symlink there names (berth's own
	// walks of the root do not follow one either): on a data partition
	// written elsewhere, one would send berth's trees and locks to any
	// directory of the host.
	notDir := func() (*Cache, error) {
		return nil, fmt.Errorf("open cache %s: not a directory (a symlink is not followed: name the directory it points to)", root)
	}
	if fi, err := os.Lstat(root); err == nil && !fi.IsDir() {
		return notDir()
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("open cache %s: %w", root, err)
	}
	if fi, err := os.Lstat(root); err != nil || !fi.IsDir() {
		return notDir()
	}
	c := &Cache{Root: root, inflight: make(map[string]*sync.Mutex)}
	unlock, err := c.lockRoot(unix.LOCK_EX)
	for try := 0; errors.Is(err, unix.ENOENT) && try < 10; try++ {
		// Removed since MkdirAll by a command that had made it and
		// failed (RemoveIfEmpty): made again.
		if err := os.MkdirAll(root, 0o700); err != nil {
			return nil, fmt.Errorf("open cache %s: %w", root, err)
		}
		unlock, err = c.lockRoot(unix.LOCK_EX)
	}
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := c.removeStale(); err != nil {
		return nil, err
	}
	return c, nil
}

// RemoveIfEmpty removes the cache's root when it holds nothing but its
// lock file, as a first pull that failed leaves it, and then each parent
// up to top (a directory above root, or root itself) that is empty: a
// command that created them and failed leaves nothing behind. A root that
// holds anything else, or whose lock another process holds, is kept; so
// is any directory that is not empty by the time it is removed.
func (c *Cache) RemoveIfEmpty(top string) error {
	unlock, err := c.lockRoot(unix.LOCK_EX | unix.LOCK_NB)
	if err != nil {
		return nil // in use
	}
	defer unlock()
	names, err := dirNames(c.Root)
	if err != nil || len(names) != 1 || names[0] != ".lock" {
		return err
	}
	if err := os.Remove(filepath.Join(c.Root, ".lock")); err != nil {
		return fmt.Errorf("remove cache %s: %w", c.Root, err)
	}
	if rel, err := filepath.Rel(top, c.Root); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		top = c.Root // not above root: root alone
	}
	for d := filepath.Clean(c.Root); ; d = filepath.Dir(d) {
		if err := unix.Rmdir(d); err != nil {
			return nil // not empty: kept
		}
		if d == filepath.Clean(top) || d == filepath.Dir(d) {
			return nil
		}
	}
}

// dirNames lists a directory's entries, not following a symlink at dir.
func dirNames(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	return f.Readdirnames(-1)
}

// OpenExistingCache opens a cache that is there already, for tools that
// must not take some other directory for a cache: root must be a
// directory holding the cache's .lock, or an empty one.
func OpenExistingCache(root string) (*Cache, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("no image cache at %s: %w", root, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not an image cache: not a directory", root)
	}
	if _, err := os.Lstat(filepath.Join(root, ".lock")); err != nil {
		if empty, err := isEmpty(root); err != nil || !empty {
			return nil, fmt.Errorf("%s is not a berth image cache (no .lock, and it holds other files): refusing to use it as one", root)
		}
	}
	return OpenCache(root)
}

// removeStale removes the staging and trash directories of interrupted
// unpacks and removals; the caller holds the root lock exclusively.
func (c *Cache) removeStale() error {
	for _, prefix := range []string{".staging-", ".trash-"} {
		if _, err := removeStale(c.Root, prefix, false); err != nil {
			return fmt.Errorf("cache %s: %w", c.Root, err)
		}
	}
	return nil
}

// lockRoot flocks ROOT/.lock and returns the unlock. The lock is the
// file the path names once it is held: RemoveIfEmpty removes the lock
// file (and the root) under it, and a process that had opened the file
// before then would otherwise hold a lock nobody else can see.
func (c *Cache) lockRoot(how int) (func(), error) {
	path := filepath.Join(c.Root, ".lock")
	for try := 0; ; try++ {
		fd, err := regfile.OpenLock(path)
		if err != nil {
			return nil, fmt.Errorf("cache %s: %w", c.Root, err)
		}
		if lockOpened != nil {
			lockOpened()
		}
		if err := flock(fd, how); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("cache %s: lock: %w", c.Root, err)
		}
		var held, named unix.Stat_t
		err = unix.Fstat(fd, &held)
		if err == nil {
			err = unix.Lstat(path, &named)
		}
		if err == nil && held.Dev == named.Dev && held.Ino == named.Ino {
			return func() { unix.Close(fd) }, nil
		}
		unix.Close(fd)
		if try == 10 {
			return nil, fmt.Errorf("cache %s: lock: its lock file keeps being replaced", c.Root)
		}
	}
}

// lockOpened, when set (a test), runs between lockRoot's open and flock.
var lockOpened func()

// lockDir opens a directory (not followed if a symlink) and flocks it.
func lockDir(p string, how int) (int, error) { return lockAt(unix.AT_FDCWD, p, how) }

func flock(fd, how int) error {
	for {
		if err := unix.Flock(fd, how); err != unix.EINTR {
			return err
		}
	}
}

// entryDir is the cache directory of a digest.
func (c *Cache) entryDir(digest string) string {
	return filepath.Join(c.Root, strings.Replace(digest, ":", "-", 1))
}

// digestLock serialises Prepare calls for one digest in this process.
func (c *Cache) digestLock(digest string) func() {
	c.mu.Lock()
	if c.inflight == nil {
		c.inflight = make(map[string]*sync.Mutex)
	}
	m, ok := c.inflight[digest]
	if !ok {
		m = new(sync.Mutex)
		c.inflight[digest] = m
	}
	c.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// crashPoint, when set (by tests), is called at each step of Prepare, and
// at "extracting" once crashEntry entries of a berth image are written.
var crashPoint func(step string)

const crashEntry = 10

func reached(step string) {
	if crashPoint != nil {
		crashPoint(step)
	}
}

// Prepare makes sure the image at src is unpacked in the cache and returns
// its rootfs. The image's digest (see Digest; a memo keyed by the file's
// identity spares rehashing an unchanged file) is checked against
// opts.Digest and its signature against opts.PublicKey before anything is
// written. An image already in the cache is not decoded again (Cached).
// Prepare is safe for concurrent use, within a process and across
// processes sharing the cache, and excludes GC: from the moment it knows
// the digest until it returns, the entry it finds or makes stays.
func (c *Cache) Prepare(src string, opts PrepareOptions) (p Prepared, err error) {
	start := time.Now()
	defer func() { p.Elapsed = time.Since(start) }()
	in, err := openInput(src, opts.Platform, opts.Limits.withDefaults())
	if err != nil {
		return p, fmt.Errorf("prepare %s: %w", src, err)
	}
	defer in.close()
	if opts.Vouched && opts.Digest != "" && in.m != nil && in.store == nil {
		in.digest, in.vouched = opts.Digest, true
	}
	if p.Digest, err = c.inputDigest(in); err != nil {
		return p, fmt.Errorf("prepare %s: %w", src, err)
	}
	if _, err := verifyInput(in, UnpackOptions{Digest: opts.Digest, PublicKey: opts.PublicKey, Signature: opts.Signature}); err != nil {
		return p, fmt.Errorf("prepare %s: %w", src, err)
	}
	p.Config = in.config
	defer c.digestLock(p.Digest)()
	unlock, err := c.lockRoot(unix.LOCK_SH) // GC takes it exclusively
	if err != nil {
		return p, fmt.Errorf("prepare %s: %w", src, err)
	}
	reached("locked")
	final := c.entryDir(p.Digest)
	p.Rootfs = filepath.Join(final, "rootfs")
	lease, err := c.readyEntry(in, src, opts, final, &p)
	if err != nil {
		unlock()
		return p, fmt.Errorf("prepare %s: %w", src, err)
	}
	p.Release = sync.OnceFunc(func() {
		unix.Close(lease)
		unlock()
	})
	return p, nil
}

// readyEntry finds or makes the entry final for in and returns the lease
// on it (leaseEntry), with p filled in; the caller holds the root lock
// shared. An older berth's tree is unpacked again and replaces it
// (replace); when a container root uses it, or unpacking it again fails,
// it is used as it is (p.Stale).
func (c *Cache) readyEntry(in *input, src string, opts PrepareOptions, final string, p *Prepared) (int, error) {
	if err := dropForeign(final); err != nil {
		return -1, err
	}
	stale := false
	if st, err := os.Stat(p.Rootfs); err == nil && st.IsDir() {
		// A current tree is never replaced (and GC waits for the root
		// lock): it is leased after the test, without a lease taken only
		// to test it, which entryInUse would take for a container's.
		if !entryCurrent(final) {
			unlock, err := lockReplacer(final)
			if err != nil {
				return -1, err
			}
			defer unlock()
		}
		if entryCurrent(final) { // or replaced while lockReplacer waited
			p.Cached = true
			reached("cached")
			if err := cachedConfig(in, final, p); err != nil {
				return -1, err
			}
			return leaseEntry(final)
		}
		if c.entryInUse(final) {
			return keepStale(final, p, "a container root uses it")
		}
		stale = true
	}
	// The entry is named by the digest: what is unpacked into it must
	// be the bytes that have it, not the file as rewritten since.
	if _, err := in.seal(p.Digest); err != nil {
		return -1, err
	}
	p.Config = in.config // as read again once sealed
	stage, err := newStaging(c.Root, ".staging-")
	if err != nil {
		return -1, err
	}
	reached("staging")
	if err := writeConfig(stage.path, in.config); err != nil {
		stage.remove()
		return -1, err
	}
	p.Stats.Digest = p.Digest
	uo := UnpackOptions{Platform: opts.Platform, Limits: opts.Limits, Progress: opts.Progress, Log: opts.Log}
	_, err = extractInput(in, src, destDir{path: filepath.Join(stage.path, "rootfs"), fd: -1}, uo, &p.Stats)
	if err == nil {
		reached("unpacked")
		err = writeFormat(stage.path)
	}
	if err == nil && stale {
		err = c.replace(stage, final)
	} else if err == nil {
		err = c.commit(stage, final)
	}
	if err != nil {
		stage.remove()
	}
	switch {
	case err == nil:
		p.Replaced = stale
	case errors.Is(err, errRaced): // another process finished first: use its tree
		p.Cached, p.Stats = true, Stats{}
	case errors.Is(err, errInUse):
		return keepStale(final, p, "a container root uses it")
	case stale:
		return keepStale(final, p, "unpacking it again failed: "+err.Error())
	default:
		return -1, err
	}
	return leaseEntry(final)
}

// dropForeign removes the entry final (or a shifted copy in one) when
// it is not a tree berth makes: a symlink or a file where its directory
// should be, or a rootfs in it that is one. Such a thing comes from a data partition
// written elsewhere, and overlayfs would follow it, as a container's
// lower layer, to any directory of the host — its root included. The
// entry is then unpacked anew.
func dropForeign(final string) error {
	fi, err := os.Lstat(final)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		ri, err := os.Lstat(filepath.Join(final, "rootfs"))
		if errors.Is(err, fs.ErrNotExist) || (err == nil && ri.IsDir()) {
			return nil
		}
	}
	if err := removeTree(final); err != nil {
		return fmt.Errorf("%s is not a tree berth made (a symlink or a file where a directory should be), and removing it failed: %w", final, err)
	}
	return nil
}

// errRaced is returned by commit when the entry appeared meanwhile.
var errRaced = errors.New("entry created by another process")

// commit makes a finished staging tree durable and renames it into place.
func (c *Cache) commit(stage *staging, final string) error {
	if err := stage.sync(); err != nil {
		return err
	}
	reached("synced")
	if err := unix.Rename(stage.path, final); err != nil {
		if err == unix.EEXIST || err == unix.ENOTEMPTY {
			return errRaced
		}
		return fmt.Errorf("rename %s to %s: %w", stage.path, final, err)
	}
	stage.release()
	reached("renamed")
	if err := syncDir(c.Root); err != nil {
		return fmt.Errorf("fsync %s: %w", c.Root, err)
	}
	return nil
}

// cachedConfig sets p.Config for a cache hit on an image file: the copy
// the entry keeps of the config read once the image was verified. An
// entry an older berth made has none: the file is then hashed (sealed),
// its config read again and kept in the entry.
func cachedConfig(in *input, final string, p *Prepared) error {
	if in.m == nil || in.store != nil {
		return nil // a layout's config is read from a blob its digest names
	}
	if c, err := readConfig(final); err == nil {
		p.Config = c
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if _, err := in.seal(p.Digest); err != nil {
		return err
	}
	p.Config = in.config
	_ = writeConfig(final, in.config) // if it cannot be kept, hashed again next time
	return nil
}
