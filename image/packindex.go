package image

import (
	"archive/tar"
	"fmt"
	"sort"

	"berth/mmapfs"
)

// entryType maps a tar type to the index's.
func entryType(t byte) (mmapfs.EntryType, bool) {
	switch t {
	case tar.TypeReg:
		return mmapfs.TypeReg, true
	case tar.TypeDir:
		return mmapfs.TypeDir, true
	case tar.TypeSymlink:
		return mmapfs.TypeSymlink, true
	case tar.TypeLink:
		return mmapfs.TypeLink, true
	case tar.TypeChar:
		return mmapfs.TypeChar, true
	case tar.TypeBlock:
		return mmapfs.TypeBlock, true
	case tar.TypeFifo:
		return mmapfs.TypeFifo, true
	}
	return 0, false
}

// record notes the entry whose header was just written; its data starts at
// the frame writer's position. stored is the bytes a sparse file's data
// takes in the stream (0 for any other entry).
func (s *tarSink) record(hdr *tar.Header, stored int64) error {
	rel, err := entryPath(hdr.Name)
	if err != nil {
		return err
	}
	typ, ok := entryType(hdr.Typeflag)
	if !ok {
		return fmt.Errorf("tar type %q has no index type", hdr.Typeflag)
	}
	e := mmapfs.Entry{
		Type: typ, Mode: uint32(hdr.Mode & 0o7777), UID: uint32(hdr.Uid), GID: uint32(hdr.Gid),
		MTime: hdr.ModTime.Unix(), MTimeNs: uint32(hdr.ModTime.Nanosecond()), Size: hdr.Size,
		Sparse: stored > 0, Stored: stored,
		Devmajor: uint32(hdr.Devmajor), Devminor: uint32(hdr.Devminor),
	}
	switch typ {
	case mmapfs.TypeSymlink:
		e.Link = hdr.Linkname
	case mmapfs.TypeLink:
		if e.Link, err = entryPath(hdr.Linkname); err != nil {
			return err
		}
	}
	if typ != mmapfs.TypeReg {
		e.Size = 0
	}
	s.items = append(s.items, mmapfs.IndexItem{Path: rel, Entry: e})
	s.dataAt = append(s.dataAt, s.fw.pos)
	s.bytes += e.Size
	s.prog.tick(len(s.items), s.bytes)
	return nil
}

// index builds the image's index once the frames are known.
func (s *tarSink) index(frames []mmapfs.Frame) (*mmapfs.Index, error) {
	starts := make([]int64, len(frames))
	var total int64
	for i, f := range frames {
		starts[i] = total
		total += int64(f.DSize)
	}
	for i := range s.items {
		off := s.dataAt[i]
		fi := sort.Search(len(starts), func(j int) bool { return starts[j] > off }) - 1
		e := &s.items[i].Entry
		e.Frame, e.Offset = uint32(fi), uint32(off-starts[fi])
	}
	return mmapfs.BuildIndex(s.items, total)
}
