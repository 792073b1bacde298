package mmapfs

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
)

// IndexItem is an entry named by its full path, as BuildIndex takes it:
// "." is the root, other paths are clean and relative ("usr/bin/env").
type IndexItem struct {
	Path  string
	Entry Entry // Parent and Name are filled in by BuildIndex
}

// BuildIndex puts items into index order. A later item for a path replaces
// an earlier one; parents that no item names become implicit directories
// (mode 0755, owner 0:0, mtime 0), as extractors create them.
func BuildIndex(items []IndexItem, streamSize int64) (*Index, error) {
	byPath := make(map[string]Entry, len(items)+1)
	children := make(map[string][]string)
	var add func(p string, e Entry) error
	add = func(p string, e Entry) error {
		if _, ok := byPath[p]; ok {
			byPath[p] = e
			return nil
		}
		byPath[p] = e
		if p == "." {
			return nil
		}
		dir := path.Dir(p)
		if parent, ok := byPath[dir]; !ok {
			if err := add(dir, Entry{Type: TypeDir, Implicit: true, Mode: 0o755}); err != nil {
				return err
			}
		} else if parent.Type != TypeDir {
			return fmt.Errorf("index: %q is under %q, a %s", p, dir, parent.Type)
		}
		children[dir] = append(children[dir], p)
		return nil
	}
	for _, it := range items {
		if it.Path == "" || it.Path != "." && (path.Clean(it.Path) != it.Path || strings.HasPrefix(it.Path, "/") || strings.HasPrefix(it.Path, "../")) {
			return nil, fmt.Errorf("index: bad path %q", it.Path)
		}
		if it.Path == "." && it.Entry.Type != TypeDir {
			return nil, fmt.Errorf("index: the root is a %s", it.Entry.Type)
		}
		if err := add(it.Path, it.Entry); err != nil {
			return nil, err
		}
	}
	if _, ok := byPath["."]; !ok {
		if err := add(".", Entry{Type: TypeDir, Implicit: true, Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	ix := &Index{StreamSize: streamSize, Entries: make([]Entry, 0, len(byPath))}
	queue := []string{"."}
	root := byPath["."]
	root.Parent, root.Name = 0, ""
	ix.Entries = append(ix.Entries, root)
	for qi := 0; qi < len(queue); qi++ {
		kids := children[queue[qi]]
		slices.SortFunc(kids, func(a, b string) int { return strings.Compare(path.Base(a), path.Base(b)) })
		for _, k := range kids {
			e := byPath[k]
			if e.Type == TypeDir {
				queue = append(queue, k)
			} else if len(children[k]) > 0 {
				return nil, fmt.Errorf("index: %q holds entries but is a %s", k, e.Type)
			}
			e.Parent, e.Name = uint32(qi), path.Base(k)
			ix.Entries = append(ix.Entries, e)
		}
	}
	// queue index = entry index holds only while every directory is
	// appended in queue order, which the loop above does: fix up parents.
	dirIndex := make([]uint32, 0, len(queue))
	for i, e := range ix.Entries {
		if e.Type == TypeDir {
			dirIndex = append(dirIndex, uint32(i))
		}
	}
	for i := 1; i < len(ix.Entries); i++ {
		ix.Entries[i].Parent = dirIndex[ix.Entries[i].Parent]
	}
	return ix, nil
}

// Children returns the range [lo, hi) of the entries directly in directory
// d.
func (ix *Index) Children(d int) (lo, hi int) {
	p := uint32(d)
	lo = sort.Search(len(ix.Entries)-1, func(i int) bool { return ix.Entries[i+1].Parent >= p }) + 1
	hi = sort.Search(len(ix.Entries)-1, func(i int) bool { return ix.Entries[i+1].Parent > p }) + 1
	return lo, hi
}

// Lookup returns the entry named name in directory d, or -1.
func (ix *Index) Lookup(d int, name string) int {
	lo, hi := ix.Children(d)
	i := lo + sort.Search(hi-lo, func(i int) bool { return ix.Entries[lo+i].Name >= name })
	if i < hi && ix.Entries[i].Name == name {
		return i
	}
	return -1
}

// Path returns entry i's path relative to the root ("." for the root).
func (ix *Index) Path(i int) string {
	if i == 0 {
		return "."
	}
	var parts []string
	for ; i != 0; i = int(ix.Entries[i].Parent) {
		parts = append(parts, ix.Entries[i].Name)
	}
	slices.Reverse(parts)
	return strings.Join(parts, "/")
}
