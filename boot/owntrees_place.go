package boot

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"berth/internal/mountinfo"

	"golang.org/x/sys/unix"
)

// fsPlace is where a directory is in its filesystem: the filesystem's
// device (mountinfo's "major:minor") and the path from the filesystem's
// root. A bind mount of the image cache mounted elsewhere, or of a
// directory holding it, reaches the same places as the cache's own path.
// NFS reports every mount's root as "/", whatever directory of the export
// it shows: its mounts have no place (placeless), and only their paths
// are compared. source is the filesystem's source, for messages.
type fsPlace struct{ dev, path, source string }

// treeAt is one of berth's trees, its place and where the kernel says it
// is (its symlinks resolved).
type treeAt struct {
	tree  *ownTree
	place fsPlace
	path  string
}

// byPlace is overlap's second comparison, for the handle name in fd
// (found at dir) that no path comparison caught: its place against each
// tree's and, when holds, the places of the writable mounts below it,
// which a recursive bind takes along.
func (t ownTrees) byPlace(fd int, dir, name string, holds bool) (hit, error) {
	where := filepath.Join(dir, name)
	mounts, err := mountinfo.Read()
	if err != nil {
		return hit{}, err
	}
	trees := t.places(mounts)
	if at, ok := placeOf(mounts, fd, dir, name); ok {
		for _, tr := range trees {
			if h := tr.match(at, holds); h.tree != nil {
				h.where = where
				return h, nil
			}
		}
	}
	if !holds {
		return hit{where: where}, nil
	}
	// Whether the handle has a place or not (NFS): the mounts below it,
	// hidden ones too.
	for _, m := range mounts {
		if m.Point == where || !pathWithin(m.Point, where) || readOnly(m) || placeless(m) {
			continue
		}
		for _, tr := range trees {
			if h := tr.match(fsPlace{m.Dev, m.Root, m.Source}, true); h.tree != nil {
				h.where, h.mount = where, m.Point
				return h, nil
			}
		}
	}
	return hit{where: where}, nil
}

// readOnly reports whether m is mounted read-only: a recursive bind's
// copy of it is too, and no container writes through it.
func readOnly(m mountinfo.Mount) bool {
	return m.Options == "ro" || strings.HasPrefix(m.Options, "ro,")
}

// places are the places of t, each once.
func (t ownTrees) places(mounts []mountinfo.Mount) []treeAt {
	var out []treeAt
	for i := range t {
		p, path, ok := treePlace(mounts, t[i].path)
		if ok && !slices.ContainsFunc(out, func(t treeAt) bool { return t.place == p }) {
			out = append(out, treeAt{&t[i], p, path})
		}
	}
	return out
}

// match returns a hit on tr when at is in it or, when holds, holds it,
// saying where at is beside the tree; no where.
func (tr treeAt) match(at fsPlace, holds bool) hit {
	switch {
	case tr.place.dev != at.dev:
	case pathWithin(at.path, tr.place.path):
		rel, _ := filepath.Rel(tr.place.path, at.path)
		return hit{tree: tr.tree, in: true, detail: "the same directory as " + filepath.Join(tr.path, rel)}
	case holds && pathWithin(tr.place.path, at.path):
		// The directory it is need not be above the tree's path: the
		// tree may be a bind mount of a directory of that filesystem.
		return hit{tree: tr.tree, detail: fmt.Sprintf("the directory %s of %s (%s), which holds its directory %s",
			at.path, at.source, at.dev, tr.place.path)}
	}
	return hit{}
}

// placeless reports whether m's root tells nothing: an NFS mount's, which
// mountinfo gives as "/" whatever directory of the export it shows, or a
// deleted directory's ("…//deleted").
func placeless(m mountinfo.Mount) bool {
	return m.FSType == "nfs" || m.FSType == "nfs4" || strings.HasSuffix(m.Root, "//deleted")
}

// placeOf returns the place of name in the directory fd, which the kernel
// reports at dir: the mount (statx's STATX_MNT_ID) of name — which may be
// a mount point itself — or, when name is not made yet, of fd, looked up
// in mounts. It is false when the kernel cannot say (before Linux 5.8),
// the mount is not listed or is placeless.
func placeOf(mounts []mountinfo.Mount, fd int, dir, name string) (fsPlace, bool) {
	id, ok := mountID(fd, name)
	rest := ""
	if ok {
		dir = filepath.Join(dir, name)
	} else if id, ok = mountID(fd, ""); ok {
		rest = name
	} else {
		return fsPlace{}, false
	}
	for _, m := range mounts {
		if uint64(m.ID) == id && placeless(m) {
			break
		}
		if uint64(m.ID) == id && pathWithin(dir, m.Point) {
			rel, err := filepath.Rel(m.Point, dir)
			if err != nil {
				break
			}
			return fsPlace{m.Dev, filepath.Join(m.Root, rel, rest), m.Source}, true
		}
	}
	return fsPlace{}, false
}

// mountID is the ID of the mount name in fd ("": fd itself) is on.
func mountID(fd int, name string) (uint64, bool) {
	var st unix.Statx_t
	err := unix.Statx(fd, name, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &st)
	return st.Mnt_id, err == nil && st.Mask&unix.STATX_MNT_ID != 0
}

// treePlace returns the place of the tree at the clean absolute path p
// and where the kernel says it is: its longest existing prefix opened,
// the rest appended.
func treePlace(mounts []mountinfo.Mount, p string) (fsPlace, string, bool) {
	rest := ""
	for q := p; ; q = filepath.Dir(q) {
		if fd, err := unix.Open(q, unix.O_PATH|unix.O_CLOEXEC, 0); err == nil {
			defer unix.Close(fd)
			dir, err := fdPath(fd)
			if err != nil {
				return fsPlace{}, "", false
			}
			place, ok := placeOf(mounts, fd, dir, rest)
			return place, filepath.Join(dir, rest), ok
		}
		if q == "/" || q == "." {
			return fsPlace{}, "", false
		}
		rest = filepath.Join(filepath.Base(q), rest)
	}
}
