package image

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// packLayers writes the merged layers of an OCI or docker image to sink in
// the order a directory is packed in (depth first, names byte-wise sorted),
// so that the image reads back the same with GNU tar, which needs every
// directory's entries right after it to restore directory times. The
// layers are read in layer order, so the surviving files' data is spooled
// to a temporary file in dir first, and written out in tree order after.
// A hardlink group's data goes with whichever of its names comes first in
// that order; the others link to it.
func packLayers(in *input, plan *mergePlan, lim Limits, workers int, dir string, sink *tarSink, log io.Writer) error {
	spool, err := os.CreateTemp(dir, ".berth-spool-*")
	if err != nil {
		return err
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	type item struct {
		hdr *tar.Header
		off int64
	}
	var items []item
	var size int64
	err = emitLayers(in.store, in.layers, plan, lim, workers, func(hdr *tar.Header, data io.Reader) error {
		out, err := normalizeHeader(hdr)
		if err != nil || out == nil {
			if out == nil && err == nil {
				fmt.Fprintf(log, "berth: pack: skipping %q: unsupported tar type %q\n", hdr.Name, hdr.Typeflag)
			}
			return err
		}
		it := item{hdr: out, off: size}
		if out.Size > 0 {
			n, err := io.Copy(spool, io.LimitReader(data, out.Size))
			if err == nil && n != out.Size {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				return fmt.Errorf("spooling %s: %w", spool.Name(), err)
			}
			size += n
		}
		items = append(items, it)
		return nil
	})
	if err != nil {
		return err
	}
	key := func(h *tar.Header) string { p, _ := entryPath(h.Name); return p }
	slices.SortFunc(items, func(a, b item) int { return comparePaths(key(a.hdr), key(b.hdr)) })
	// Hardlinks: the first name of a group in this order carries the data.
	first := make(map[string]string) // target path → name carrying its data
	byPath := make(map[string]int, len(items))
	for i, it := range items {
		byPath[key(it.hdr)] = i
	}
	for i := range items {
		h := items[i].hdr
		if h.Typeflag != tar.TypeLink {
			continue
		}
		if name, ok := first[h.Linkname]; ok {
			h.Linkname = name
			continue
		}
		t, ok := byPath[h.Linkname]
		if !ok || t < i {
			first[h.Linkname] = h.Linkname // the target comes first: links stay as they are
			continue
		}
		// This link comes before its target: it takes the target's data
		// and metadata, and the target becomes a link to it.
		target := items[t].hdr
		name := h.Name
		data := *target
		data.Name = name
		items[i] = item{hdr: &data, off: items[t].off}
		items[t].hdr = &tar.Header{Name: target.Name, Typeflag: tar.TypeLink, Linkname: name,
			Mode: target.Mode, Uid: target.Uid, Gid: target.Gid, ModTime: target.ModTime}
		first[key(target)] = name
	}
	for _, it := range items {
		if err := sink.add(it.hdr, io.NewSectionReader(spool, it.off, it.hdr.Size)); err != nil {
			return fmt.Errorf("entry %q: %w", it.hdr.Name, err)
		}
	}
	return nil
}

// comparePaths orders clean relative paths depth first, each directory's
// entries byte-wise by name, the root first: the order packDir writes.
func comparePaths(a, b string) int {
	if a == b {
		return 0
	}
	if a == "." {
		return -1
	}
	if b == "." {
		return 1
	}
	for {
		ca, ra, moreA := strings.Cut(a, "/")
		cb, rb, moreB := strings.Cut(b, "/")
		if c := strings.Compare(ca, cb); c != 0 {
			return c
		}
		switch {
		case !moreA:
			return -1 // a is a parent of b
		case !moreB:
			return 1
		}
		a, b = ra, rb
	}
}

// spoolDir is where packing an OCI image spools its files: beside out.
func spoolDir(out string) string { return filepath.Dir(out) }
