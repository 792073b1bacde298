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
// file, under the same lease as Prepare (Release ends it): for a
// generation being rolled back to, whose image file may have been
// replaced since its tree was unpacked and verified. The Prepared has no
// Config: the caller kept what the image said. An entry that is not
// there is an error.
func (c *Cache) Lookup(digest string) (p Prepared, err error) {
	start := time.Now()
	if err := checkDigestSyntax(digest); err != nil {
		return p, fmt.Errorf("lookup %q: %w", digest, err)
	}
	unlock, err := c.lockRoot(unix.LOCK_SH)
	if err != nil {
		return p, fmt.Errorf("lookup %s: %w", digest, err)
	}
	p.Digest, p.Cached = digest, true
	p.Rootfs = filepath.Join(c.entryDir(digest), "rootfs")
	if st, err := os.Lstat(p.Rootfs); err != nil || !st.IsDir() {
		unlock()
		return Prepared{}, fmt.Errorf("lookup %s: not in the cache %s", digest, c.Root)
	}
	p.Release = sync.OnceFunc(unlock)
	p.Elapsed = time.Since(start)
	return p, nil
}
