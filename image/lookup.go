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
// is not found: the image is to be prepared again.
func (c *Cache) Lookup(digest string) (p Prepared, ok bool, err error) {
	return c.lookup(digest, false)
}

// LookupAny is Lookup that also finds a tree an older berth made, marked
// Stale: for when no image is left to unpack it again from.
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
	rootfs := filepath.Join(c.entryDir(digest), "rootfs")
	st, err := os.Lstat(rootfs)
	stale := err == nil && !entryCurrent(filepath.Dir(rootfs))
	if err != nil || !st.IsDir() || stale && !any {
		unlock()
		return Prepared{}, false, nil
	}
	p.Digest, p.Cached, p.Stale, p.Rootfs = digest, true, stale, rootfs
	p.Release = sync.OnceFunc(unlock)
	p.Elapsed = time.Since(start)
	return p, true, nil
}
