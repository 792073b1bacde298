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
// kept what the image said.
func (c *Cache) Lookup(digest string) (p Prepared, ok bool, err error) {
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
	if st, err := os.Lstat(rootfs); err != nil || !st.IsDir() {
		unlock()
		return Prepared{}, false, nil
	}
	p.Digest, p.Cached, p.Rootfs = digest, true, rootfs
	p.Release = sync.OnceFunc(unlock)
	p.Elapsed = time.Since(start)
	return p, true, nil
}
