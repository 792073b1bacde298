package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"berth/container"
)

// berth's own trees on the host — its state directory and the image
// cache — are never a container's to write: the cache's trees are other
// containers' lower layers, trusted as unpacked, and the state holds the
// generations a boot trusts. berth check refuses configs that name them
// as written (checkCacheBinds, checkVolumes); the checks here run where
// berth boot gives a container a host path to write, on the handle berth
// opened, whose place the kernel reports with every symlink resolved: a
// follow_symlink bind, a cache or state reached through a symlink or
// through a bind mount of it (or of a directory holding it) mounted
// elsewhere, and berth boot --state elsewhere than the config assumes are
// all caught.

// ownTree is one of berth's trees: its clean path and what it is.
type ownTree struct{ path, what string }

// ownTrees are berth's trees, each as written and, where that differs,
// with its symlinks resolved (realPath): a writable bind of a directory
// holding the path as written could move the tree by retargeting a link.
type ownTrees []ownTree

// ownTreesOf are the trees of a boot with config cfg: its image cache,
// the caches, when given, that its containers' layers came from, and
// the state directory.
func (b *booter) ownTreesOf(cfg *Config, caches ...string) ownTrees {
	var t ownTrees
	for _, c := range append(caches, b.cacheRoot(cfg)) {
		t = t.add(c, "image cache")
	}
	return t.add(b.opts.StateDir, "state directory")
}

// ownTreesFor are the trees of cfg and of every cache opened: the
// containers a reload to another cache kept run from the old one's trees.
func (s *supervisor) ownTreesFor(cfg *Config) ownTrees {
	s.cacheMu.Lock()
	caches := slices.Clone(s.cacheRoots)
	s.cacheMu.Unlock()
	return s.b.ownTreesOf(cfg, caches...)
}

// add appends the tree at p.
func (t ownTrees) add(p, what string) ownTrees {
	p = filepath.Clean(p)
	t = append(t, ownTree{p, what})
	if r := realPath(p); r != p {
		t = append(t, ownTree{r, what})
	}
	return t
}

// realPath is the absolute path p with the symlinks of its longest
// existing prefix resolved and the rest appended: where p is, or will
// be once made.
func realPath(p string) string {
	rest := ""
	for q := p; ; q = filepath.Dir(q) {
		if r, err := filepath.EvalSymlinks(q); err == nil {
			return filepath.Join(r, rest)
		}
		if q == "/" || q == "." {
			return p
		}
		rest = filepath.Join(filepath.Base(q), rest)
	}
}

// pathWithin reports whether the clean absolute path p is dir or lies
// inside it.
func pathWithin(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// hit is one of berth's trees that a handle meets: the tree, where the
// handle is, whether it is in the tree (else it holds it) and, when only
// the filesystem tells (a bind mount of a directory of the tree or
// holding it, mounted elsewhere), where that is beside the tree and, when
// it is a mount below the handle, where it is mounted.
type hit struct {
	tree   *ownTree
	where  string
	in     bool
	detail string
	mount  string
}

// overlap returns the tree of t that name in the directory fd (fd itself
// for "") is, lies inside or, when holds, holds — a hit with no tree when
// none. Where fd is comes from the kernel (/proc/self/fd): no path is
// looked up again. Compared by path first, then by place in a filesystem
// (byPlace), which every bind mount of one directory shares.
func (t ownTrees) overlap(fd int, name string, holds bool) (hit, error) {
	dir, err := fdPath(fd)
	if err != nil {
		return hit{}, err
	}
	where := filepath.Join(dir, name)
	for i := range t {
		if in := pathWithin(where, t[i].path); in || holds && pathWithin(t[i].path, where) {
			return hit{tree: &t[i], where: where, in: in}, nil
		}
	}
	return t.byPlace(fd, dir, name, holds)
}

// fdPath is where the kernel says fd is, in berth's root.
func fdPath(fd int) (string, error) {
	where, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("find where it is: %w", err)
	}
	if !filepath.IsAbs(where) { // "(unreachable)/…": out of berth's root
		return "", fmt.Errorf("it is out of berth's root: %s", where)
	}
	return where, nil
}

// bindCheck is container.Mount's CheckSource for a writable bind of
// source: it refuses a handle that is, lies in or holds one of t.
func (t ownTrees) bindCheck(source string) func(*os.File) error {
	return func(h *os.File) error {
		hit, err := t.overlap(int(h.Fd()), "", true)
		if err != nil {
			return fmt.Errorf("bind mount source %s: %w", container.Quote(source), err)
		}
		if hit.tree == nil {
			return nil
		}
		how := "holds"
		if hit.in {
			how = "is in"
		}
		switch {
		case hit.mount != "":
			how = "holds the mount " + hit.mount + " (" + hit.detail + "), which " + how
		case hit.detail != "":
			how = "(" + hit.where + ", " + hit.detail + ") " + how
		case hit.where != filepath.Clean(source):
			how = "(" + hit.where + ") " + how
		}
		return fmt.Errorf("bind mount source %s %s berth's %s %s: a container writing there could change what berth or other containers run; bind it with readonly = true",
			container.Quote(source), how, hit.tree.what, hit.tree.path)
	}
}

// logDirCheck is openDirNoSymlinks' check for a container's log_file:
// no directory on its way may be one of t or in one.
func (t ownTrees) logDirCheck(dirfd int, name string) error {
	hit, err := t.overlap(dirfd, name, false)
	if err == nil && hit.tree != nil {
		where := hit.where
		if hit.detail != "" {
			where += " (" + hit.detail + ")"
		}
		err = fmt.Errorf("%s is in berth's %s %s: choose a log_file outside it", where, hit.tree.what, hit.tree.path)
	}
	return err
}
