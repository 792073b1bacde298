package image

import (
	"archive/tar"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// Layers of an OCI or docker image are applied in order, as overlay
// filesystems do: a later entry replaces an earlier one at its path (a
// non-directory replaces a directory with all it held), ".wh.NAME" hides
// NAME and everything under it from lower layers, and ".wh..wh..opq" hides
// everything lower layers put in its directory. berth does this in memory,
// never on the filesystem: a first pass reads every layer's headers (and
// verifies every digest) into a tree of who wins each path; a second pass
// reads the layers again and emits only the winning entries, in layer
// order. Whiteouts therefore never delete anything, inside DEST or out, and
// what is written is exactly the final tree.
//
// The second pass emits the surviving entries other than directories in
// layer order, then the surviving directories (a directory has no data, so
// its header from the first pass is enough), parents first: nothing is
// created in a directory after its entry, so GNU tar, which applies a
// directory's metadata when it leaves the directory, restores its time
// when it reads a packed image (berth applies directory metadata last in
// any case).
//
// A hardlink whose target a later layer replaced or hid keeps the content
// it had when its layer was applied: the target's data is emitted under the
// first surviving link's name, and the other links point there.

// mnode is one path of the merged tree.
type mnode struct {
	kids map[string]*mnode
	key  int64 // winning entry, layer<<32 | its number in the layer; -1 none (an implicit directory)
	dir  bool
	size int64
	// hid is 1 + the layer whose whiteouts last went through the node's
	// subtree: after that it holds nothing of a lower layer (what the
	// layer adds is its own), so another whiteout of the layer there has
	// nothing to do, and repeated ones cost no walk each.
	hid int
}

// merger is the first pass's state.
type merger struct {
	root  *mnode
	links map[int64]int64       // hardlink entry → the non-link entry it shares data with
	dirs  map[int64]*tar.Header // directory entries' headers
	// dirBytes counts the bytes of the headers dirs keeps, bounded by
	// maxDirMeta.
	dirBytes int64
	// nodes counts the tree's nodes, implicit directories included,
	// within maxNodes: one entry of a deep path makes a node for each of
	// its parents, and the tree stays within the entry limit.
	nodes, maxNodes int
}

// newMerger returns a merger of a tree of at most maxNodes paths.
func newMerger(maxNodes int) *merger {
	return &merger{root: &mnode{key: -1, dir: true}, links: make(map[int64]int64), dirs: make(map[int64]*tar.Header), maxNodes: maxNodes}
}

func entryKey(layer, seq int) int64 { return int64(layer)<<32 | int64(seq) }
func keyLayer(k int64) int          { return int(k >> 32) }

// lookup finds the node of a clean relative path, or nil.
func (mg *merger) lookup(rel string) *mnode {
	n := mg.root
	if rel == "." {
		return n
	}
	for c := range strings.SplitSeq(rel, "/") {
		if n = n.kids[c]; n == nil {
			return nil
		}
	}
	return n
}

// ensure finds or makes the node of rel for an entry of layer l. A lower
// layer's non-directory on the way becomes an implicit directory (the
// later layer put something under it); this layer's own is an error.
func (mg *merger) ensure(rel string, l int) (*mnode, error) {
	n := mg.root
	if rel == "." {
		return n, nil
	}
	parts := strings.Split(rel, "/")
	for i, c := range parts {
		if !n.dir {
			if n.key >= 0 && keyLayer(n.key) == l {
				return nil, fmt.Errorf("%s: %w", strings.Join(parts[:i], "/"), errThroughSymlink)
			}
			n.key, n.dir, n.size = -1, true, 0
		}
		k := n.kids[c]
		if k == nil {
			if err := mg.count(); err != nil {
				return nil, err
			}
			k = &mnode{key: -1, dir: true}
			if n.kids == nil {
				n.kids = make(map[string]*mnode)
			}
			n.kids[c] = k
		}
		n = k
	}
	return n, nil
}

// count counts one more path of the tree, within maxNodes.
func (mg *merger) count() error {
	if mg.nodes++; mg.nodes > mg.maxNodes {
		return fmt.Errorf("%w: over the limit of %d paths, the directories the layers imply included", errTooManyEntries, mg.maxNodes)
	}
	return nil
}

// hide removes what layers below l put in n's subtree, and n itself when
// self. It reports whether n is left with nothing.
func hide(n *mnode, l int, self bool) bool {
	if self && n.key >= 0 && keyLayer(n.key) < l {
		n.key, n.size = -1, 0
	}
	if n.hid != l+1 {
		n.hid = l + 1
		for name, k := range n.kids {
			if hide(k, l, true) {
				delete(n.kids, name)
			}
		}
	}
	if n.key < 0 && len(n.kids) > 0 {
		n.dir = true // what this layer put under it keeps it as a directory
	}
	return n.key < 0 && len(n.kids) == 0
}

// add records entry seq of layer l.
func (mg *merger) add(l, seq int, hdr *tar.Header) error {
	rel, err := entryPath(hdr.Name)
	if err != nil {
		return err
	}
	base := path.Base(rel)
	if rel != "." && strings.HasPrefix(base, ".wh.") {
		return mg.whiteout(l, path.Dir(rel), base)
	}
	isDir := hdr.Typeflag == tar.TypeDir
	if rel == "." && !isDir {
		return errRootNotDir
	}
	if rel == "." && mg.root.key < 0 {
		if err := mg.count(); err != nil { // the root listed: a path the unpack counts too
			return err
		}
	}
	n, err := mg.ensure(rel, l)
	if err != nil {
		return err
	}
	key := entryKey(l, seq)
	if hdr.Typeflag == tar.TypeLink {
		target, err := entryPath(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
		}
		tn := mg.lookup(target)
		switch {
		case target == rel:
			return errLinkToSelf
		case tn == nil || tn.key < 0:
			return fmt.Errorf("hardlink target %q is not in this layer or a lower one", target)
		case tn.dir:
			return fmt.Errorf("hardlink target %q: %w", target, errLinkToDir)
		}
		tk := tn.key
		if via, ok := mg.links[tk]; ok {
			tk = via
		}
		mg.links[key] = tk
	}
	if !isDir {
		n.kids = nil
	} else {
		h := cloneHeader(hdr)
		if mg.dirBytes += headerBytes(h); mg.dirBytes > maxDirMeta {
			return fmt.Errorf("the directories' headers, kept until the layers are merged, pass %d MiB", maxDirMeta>>20)
		}
		mg.dirs[key] = h
	}
	n.key, n.dir, n.size = key, isDir, 0
	if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA {
		n.size = hdr.Size
	}
	return nil
}

// whiteout applies ".wh.NAME" or ".wh..wh..opq" of layer l in dir.
func (mg *merger) whiteout(l int, dir, base string) error {
	parent := mg.lookup(dir)
	if base == ".wh..wh..opq" {
		if parent != nil {
			hide(parent, l, false)
		}
		return nil
	}
	name := strings.TrimPrefix(base, ".wh.")
	if strings.HasPrefix(name, ".wh.") {
		return nil // other AUFS metadata (.wh..wh.plnk and such): not a whiteout
	}
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("whiteout %q names no entry (refused)", base)
	}
	if parent != nil && parent.kids[name] != nil && hide(parent.kids[name], l, true) {
		delete(parent.kids, name)
	}
	return nil
}

// mergePlan is what the second pass emits.
type mergePlan struct {
	paths   map[int64]string // winning entry → its path
	carry   map[int64]string // replaced hardlink target → the link name its data goes under
	skip    map[int64]bool   // links whose name carries their target's data
	linkTo  map[int64]string // surviving hardlink → the path it links to
	dirs    []*tar.Header    // surviving directories, parents first, emitted last
	entries int
	bytes   int64
}

// plan walks the final tree.
func (mg *merger) plan() *mergePlan {
	p := &mergePlan{paths: make(map[int64]string), carry: make(map[int64]string),
		skip: make(map[int64]bool), linkTo: make(map[int64]string)}
	var walk func(n *mnode, rel string)
	walk = func(n *mnode, rel string) {
		if n.key >= 0 {
			p.paths[n.key] = rel
			p.entries++
			p.bytes += n.size
			if h := mg.dirs[n.key]; h != nil && n.dir {
				out := *h
				out.Name = rel + "/"
				if rel == "." {
					out.Name = "."
				}
				p.dirs = append(p.dirs, &out)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(n.kids)) {
			walk(n.kids[name], path.Join(rel, name))
		}
	}
	walk(mg.root, ".")
	orphans := make(map[int64][]int64) // gone target → its surviving links
	for h, t := range mg.links {
		if _, ok := p.paths[h]; !ok {
			continue
		}
		if tp, ok := p.paths[t]; ok {
			p.linkTo[h] = tp
		} else {
			orphans[t] = append(orphans[t], h)
		}
	}
	for t, hs := range orphans {
		slices.Sort(hs) // stream order
		first := p.paths[hs[0]]
		p.carry[t], p.skip[hs[0]] = first, true
		for _, h := range hs[1:] {
			p.linkTo[h] = first
		}
	}
	return p
}

// emitted returns the header the second pass writes for entry key, or nil
// to skip it (directories are emitted at the end, from p.dirs).
func (p *mergePlan) emitted(key int64, hdr *tar.Header) *tar.Header {
	if hdr.Typeflag == tar.TypeDir {
		return nil
	}
	if name, ok := p.carry[key]; ok {
		out := *hdr
		out.Name = name
		return &out
	}
	name, ok := p.paths[key]
	if !ok || p.skip[key] {
		return nil
	}
	out := *hdr
	out.Name = name
	if t, ok := p.linkTo[key]; ok {
		out.Linkname = t
	}
	return &out
}

// cloneHeader copies hdr with strings of its own, so that what headerBytes
// counts is what the copy keeps: archive/tar cuts a header's names and
// records from its PAX block, which may be a megabyte.
func cloneHeader(hdr *tar.Header) *tar.Header {
	h := *hdr
	h.Name, h.Linkname = strings.Clone(h.Name), strings.Clone(h.Linkname)
	h.Uname, h.Gname = strings.Clone(h.Uname), strings.Clone(h.Gname)
	h.Xattrs = nil // deprecated; the same records are in PAXRecords (SCHILY.xattr.*)
	if h.PAXRecords != nil {
		h.PAXRecords = make(map[string]string, len(hdr.PAXRecords))
		for k, v := range hdr.PAXRecords {
			h.PAXRecords[strings.Clone(k)] = strings.Clone(v)
		}
	}
	return &h
}

// headerBytes is what a kept header costs: its strings and records, and
// dirMetaFixed.
func headerBytes(h *tar.Header) int64 {
	return dirMetaFixed + int64(len(h.Name)+len(h.Linkname)+len(h.Uname)+len(h.Gname)) + recordBytes(h.PAXRecords)
}
