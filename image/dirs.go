package image

import (
	"archive/tar"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Directories are created on the way (mode 0700, so that nothing else can
// enter them during the unpack) and get their metadata at the end, deepest
// first, so a read-only directory does not block its own children and an
// entry cannot change a directory's mode under a later one.

// mkdir creates a directory, or keeps an existing one, and defers its
// metadata.
func (x *extractor) mkdir(rel string, hdr *tar.Header) error {
	fresh := false
	if rel != "." {
		d, base, err := x.root.parent(rel, true)
		if err != nil {
			return err
		}
		err = unix.Mkdirat(d.fd, base, 0o700)
		if err == unix.EEXIST {
			var st unix.Stat_t
			if err = unix.Fstatat(d.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
				if err = x.removeExisting(d.fd, rel, base, false); err == nil {
					err = unix.Mkdirat(d.fd, base, 0o700)
					fresh = err == nil
				}
			}
		} else {
			fresh = err == nil
		}
		if err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
		if ref, ok := x.root.made[rel]; ok && ref.implicit && !fresh {
			ref.implicit = false // made for an entry below, counted now as this one
			x.root.made[rel] = ref
			x.root.implicit--
		}
		if fresh {
			x.root.made[rel] = dirRef{sgid: d.sgid, mem: d.mem}
			fresh = !d.sgid
		}
	}
	m := dirMeta{rel: rel, fresh: fresh, hdr: &tar.Header{Name: rel, Mode: hdr.Mode, Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime, PAXRecords: xattrRecords(hdr)}}
	x.dirXattrs += recordBytes(m.hdr.PAXRecords)
	if i, ok := x.dirIdx[rel]; ok {
		x.dirXattrs -= recordBytes(x.dirs[i].hdr.PAXRecords)
	} else {
		x.dirXattrs += dirMetaFixed + int64(len(rel))
	}
	if x.dirXattrs > maxDirMeta {
		return fmt.Errorf("the directories' metadata, kept until the end, passes %d MiB", maxDirMeta>>20)
	}
	if i, ok := x.dirIdx[rel]; ok {
		x.dirs[i] = m
	} else {
		x.dirIdx[rel] = len(x.dirs)
		x.dirs = append(x.dirs, m)
	}
	return nil
}

// maxDirMeta bounds what an unpack keeps of its directories' headers
// until it applies them at the end (xattrs here; whole headers in the
// layer merge): each header may take MaxHeaderBytes, and an image of a
// few hundred kilobytes could otherwise hold a million directories with
// a megabyte of compressible records each.
var maxDirMeta int64 = 64 << 20 // a variable for tests

// dirMetaFixed is what one kept directory costs besides its name and
// records: its dirMeta, tar.Header and index entry, rounded up.
const dirMetaFixed = 512

// recordBytes is the size of PAX records.
func recordBytes(r map[string]string) int64 {
	var n int64
	for k, v := range r {
		n += int64(len(k) + len(v))
	}
	return n
}

// xattrRecords keeps only the xattr PAX records of hdr, or nil: copies,
// not parts of the PAX block they were cut from (see entryPath).
func xattrRecords(hdr *tar.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		if strings.HasPrefix(k, xattrPrefix) {
			if out == nil {
				out = make(map[string]string)
			}
			out[strings.Clone(k)] = strings.Clone(v)
		}
	}
	return out
}

// finish applies the deferred directory metadata, deepest directories
// first.
func (x *extractor) finish() error {
	depth := func(m dirMeta) int {
		if m.rel == "." {
			return -1
		}
		return strings.Count(m.rel, "/")
	}
	slices.SortStableFunc(x.dirs, func(a, b dirMeta) int { return depth(b) - depth(a) })
	for _, m := range x.dirs {
		if m.gone {
			continue
		}
		x.root.beginEntry()
		if err := x.dirMetaApply(m); err != nil {
			return fmt.Errorf("directory %q: %w", m.rel, err)
		}
		if m.rel == "." {
			x.rootHdr = m.hdr
		}
	}
	x.dirs, x.dirIdx = nil, nil
	return nil
}

// dirMetaApply sets one directory's metadata through an fd opened without
// following symlinks (needed for its xattrs), or its O_PATH fd.
func (x *extractor) dirMetaApply(m dirMeta) error {
	d, base := x.root.dir0, ""
	if m.rel != "." {
		var err error
		if d, base, err = x.root.parent(m.rel, false); err != nil {
			return err
		}
	}
	if len(m.hdr.PAXRecords) == 0 {
		return x.setMeta(metaTarget{fd: -1, dirfd: d.fd, name: base, owned: m.fresh}, m.hdr)
	}
	if base == "" {
		base = "."
	}
	fd, err := unix.Openat(d.fd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return x.setMeta(metaTarget{fd: fd, owned: m.fresh}, m.hdr)
}
