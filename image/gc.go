package image

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// GC removes every cache entry whose digest is not in keep and returns the
// digests removed. Each entry is first renamed to a .trash- directory (one
// atomic step: no reader ever sees half an entry), then deleted; OpenCache
// finishes a deletion that a crash interrupted. The caller must keep the
// digests of every image in use.
func (c *Cache) GC(keep map[string]bool) (removed []string, err error) {
	ents, err := os.ReadDir(c.Root)
	if err != nil {
		return nil, fmt.Errorf("gc %s: %w", c.Root, err)
	}
	for _, e := range ents {
		hexPart, ok := strings.CutPrefix(e.Name(), "sha256-")
		digest := "sha256:" + hexPart
		if !ok || !e.IsDir() || checkDigestSyntax(digest) != nil || keep[digest] {
			continue
		}
		trash, err := os.MkdirTemp(c.Root, ".trash-")
		if err != nil {
			return removed, fmt.Errorf("gc %s: %w", c.Root, err)
		}
		dst := filepath.Join(trash, e.Name())
		if err := os.Rename(filepath.Join(c.Root, e.Name()), dst); err != nil {
			os.Remove(trash)
			return removed, fmt.Errorf("gc %s: %w", c.Root, err)
		}
		if err := os.RemoveAll(trash); err != nil {
			return removed, fmt.Errorf("gc %s: removing %s: %w", c.Root, digest, err)
		}
		removed = append(removed, digest)
	}
	c.pruneMemos()
	return removed, nil
}
