package image

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Lookup returns the cached tree of digest without reading any image
// file, under the same lease as Prepare (Release ends it); ok is false
// when the cache has no such entry. A pull uses it to fetch no layer of
// an image the cache has; a generation being rolled back to, whose
// image file may have been replaced since its tree was unpacked and
// verified, to find its tree. The Prepared has no Config: the caller
// kept what the image said. A tree an older berth made (see cacheFormat)
// is found only while it is in use (entryInUse: mounted, or leased by a
// Prepared not yet released), marked Stale, as Prepare would use it then;
// otherwise the image is to be prepared again.
func (c *Cache) Lookup(digest string) (p Prepared, ok bool, err error) {
	return c.lookup(digest, false)
}

// LookupAny is Lookup that finds a tree an older berth made in any case,
// marked Stale: for when no image is left to unpack it again from.
func (c *Cache) LookupAny(digest string) (p Prepared, ok bool, err error) {
	return c.lookup(digest, true)
}

func (c *Cache) lookup(digest string, any bool) (p Prepared, ok bool, err error) {
	start := time.Now()
	if err := checkDigestSyntax(digest); err != nil {
		return p, false, fmt.Errorf("lookup %q: %w", digest, err)
	}
	defer c.digestLock(digest)()
	unlock, err := c.lockRoot(unix.LOCK_SH) // GC takes it exclusively
	if err != nil {
		return p, false, fmt.Errorf("lookup %s: %w", digest, err)
	}
	final := c.entryDir(digest)
	rootfs := filepath.Join(final, "rootfs")
	if st, err := os.Lstat(rootfs); err != nil || !st.IsDir() {
		unlock()
		return Prepared{}, false, nil
	}
	// An older tree: under its replacer's lock (lockReplacer), so that
	// this test of use and a Prepare's do not take each other's for a
	// container's. One nothing uses is not found (before the lease: the
	// test of use takes the entry's lock exclusively).
	if !entryCurrent(final) {
		unlockReplacer, err := lockReplacer(final)
		if err != nil {
			unlock()
			return Prepared{}, false, fmt.Errorf("lookup %s: %w", digest, err)
		}
		defer unlockReplacer()
		if !any && !entryCurrent(final) && !c.entryInUse(final) {
			unlock()
			return Prepared{}, false, nil
		}
	}
	lease, err := leaseEntry(final)
	if err != nil {
		unlock()
		return Prepared{}, false, fmt.Errorf("lookup %s: %w", digest, err)
	}
	switch {
	case entryCurrent(final):
	case any:
		p.Stale = "an older berth's tree, looked up as it is"
	default:
		p.Stale = "a container root uses it"
	}
	p.Digest, p.Cached, p.Rootfs = digest, true, rootfs
	if c, err := readConfig(final); err == nil {
		p.Config, p.KeptConfig = c, true
	}
	p.Release = sync.OnceFunc(func() {
		unix.Close(lease)
		unlock()
	})
	p.Elapsed = time.Since(start)
	return p, true, nil
}
