package image

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"berth/internal/mountinfo"

	"golang.org/x/sys/unix"
)

// GCResult says what GC did.
type GCResult struct {
	Removed []string // digests of the trees removed
	Kept    []string // digests kept because the caller asked
	InUse   []string // digests kept because a mounted overlay uses their tree
	Freed   int64    // bytes of disk the removed trees took
}

// GC removes every cache entry whose digest is not in keep and whose tree
// no mounted overlay uses as a lower layer (a running container's root,
// even one whose config no longer names its image). It holds the cache
// lock exclusively, so it never runs beside a Prepare, which holds it
// shared from the moment it knows its digest until it returns. Each entry
// is first renamed to a .trash- directory (one atomic step: no reader
// ever sees half an entry), then deleted; stale staging and trash
// directories are removed too.
func (c *Cache) GC(keep map[string]bool) (res GCResult, err error) {
	unlock, err := c.lockRoot(unix.LOCK_EX)
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	defer unlock()
	if err := c.removeStale(); err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	ents, err := os.ReadDir(c.Root)
	if err != nil {
		return res, fmt.Errorf("gc %s: %w", c.Root, err)
	}
	inUse := c.mountedEntries()
	for _, e := range ents {
		hexPart, ok := strings.CutPrefix(e.Name(), "sha256-")
		digest := "sha256:" + hexPart
		switch {
		case !ok || !e.IsDir() || checkDigestSyntax(digest) != nil:
			continue
		case keep[digest]:
			res.Kept = append(res.Kept, digest)
			continue
		case inUse[e.Name()]:
			res.InUse = append(res.InUse, digest)
			continue
		}
		freed, err := c.remove(e.Name())
		if err != nil {
			return res, fmt.Errorf("gc %s: removing %s: %w", c.Root, digest, err)
		}
		res.Removed = append(res.Removed, digest)
		res.Freed += freed
	}
	c.pruneMemos()
	return res, nil
}

// remove renames entry name to a trash directory and deletes it; it
// returns the bytes its files took on disk.
func (c *Cache) remove(name string) (int64, error) {
	trash, err := os.MkdirTemp(c.Root, ".trash-")
	if err != nil {
		return 0, err
	}
	dst := filepath.Join(trash, name)
	if err := os.Rename(filepath.Join(c.Root, name), dst); err != nil {
		os.Remove(trash)
		return 0, err
	}
	size := diskUsage(dst)
	return size, removeTree(trash)
}

// diskUsage is the disk space of a tree's files and directories, each
// inode counted once.
func diskUsage(root string) int64 {
	var total int64
	seen := make(map[uint64]bool)
	filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && !seen[st.Ino] {
			seen[st.Ino] = true
			total += st.Blocks * 512
		}
		return nil
	})
	return total
}

// mountedEntries returns the names (sha256-HEX) of the cache entries whose
// tree an overlay mount of this mount namespace has as a lower layer,
// matched by path and by the directory's identity (so a cache reached
// through another path, a symlink say, is still recognised).
func (c *Cache) mountedEntries() map[string]bool {
	out, _ := c.mounted()
	return out
}

// mounted is mountedEntries, with the error of reading mountinfo.
func (c *Cache) mounted() (map[string]bool, error) {
	out := make(map[string]bool)
	mounts, err := mountinfo.Read()
	if err != nil {
		return out, err
	}
	byID := make(map[[2]uint64]string)
	ents, _ := os.ReadDir(c.Root)
	for _, e := range ents {
		var st unix.Stat_t
		if strings.HasPrefix(e.Name(), "sha256-") && unix.Stat(filepath.Join(c.Root, e.Name(), "rootfs"), &st) == nil {
			byID[[2]uint64{st.Dev, st.Ino}] = e.Name()
		}
	}
	var prefixes []string
	for _, r := range []string{c.Root, evalOr(c.Root)} {
		if abs, err := filepath.Abs(r); err == nil {
			prefixes = append(prefixes, filepath.Clean(abs)+"/sha256-")
		}
	}
	for _, m := range mounts {
		if m.FSType != "overlay" {
			continue
		}
		for _, l := range overlayLowers(m.Super) {
			for _, p := range prefixes {
				if rest, ok := strings.CutPrefix(l, p); ok {
					hexPart, _, _ := strings.Cut(rest, "/")
					out["sha256-"+hexPart] = true
				}
			}
			var st unix.Stat_t
			if unix.Stat(l, &st) == nil && byID[[2]uint64{st.Dev, st.Ino}] != "" {
				out[byID[[2]uint64{st.Dev, st.Ino}]] = true
			}
		}
	}
	return out, nil
}

// evalOr is p with its symlinks resolved, or p.
func evalOr(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// overlayLowers lists the lower layers in an overlay's superblock options
// as mountinfo shows them (octal escapes for ",", space, tab, newline and
// backslash): "lowerdir=A:B", as given to mount(2), where a ':' in a path
// is escaped with a backslash, or, mounted through fsconfig, one
// "lowerdir+=A" per layer.
func overlayLowers(opts string) []string {
	var out []string
	for _, opt := range strings.Split(opts, ",") {
		if v, ok := strings.CutPrefix(opt, "lowerdir+="); ok {
			out = append(out, mountinfo.Unescape(v))
		} else if v, ok := strings.CutPrefix(opt, "lowerdir="); ok {
			for _, l := range splitEscaped(mountinfo.Unescape(v), ':') {
				out = append(out, unescapeOpt(l))
			}
		}
	}
	return out
}

// splitEscaped splits s at every sep not escaped by a backslash.
func splitEscaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unescapeOpt removes overlay's backslash escapes from one path.
func unescapeOpt(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
