package image

import (
	"archive/tar"
	"bytes"
	"path/filepath"
	"time"
)

// fastHeader parses blk, one 512-byte tar header block, when it is a plain
// USTAR header of a regular file, hard link, symlink, device, directory or
// fifo — all ASCII, a valid checksum, every numeric field in octal ending
// in NUL, a local name — and returns exactly the header archive/tar's
// Reader.Next returns for it when no PAX or GNU header precedes it. For
// anything else it returns nil, and archive/tar reads the header instead
// (berthLoop.header). archive/tar spends most of its time on such headers
// checking that the block is ASCII a rune at a time; they are nearly every
// entry of an image packed from a tar (minbase: all 6,768).
func fastHeader(blk []byte) *tar.Header {
	if len(blk) != tarBlockSize || string(blk[257:265]) != "ustar\x0000" || string(blk[508:512]) == "tar\x00" {
		return nil
	}
	typ := blk[156]
	if typ < tar.TypeReg || typ > tar.TypeFifo {
		return nil
	}
	var sum int64 // the checksum field counts as spaces
	var or byte
	for i, c := range blk {
		or |= c
		if i-148 < 0 || i-148 >= 8 {
			sum += int64(c)
		}
	}
	chk, ok := fastOctal(blk[148:156], false)
	if or >= 0x80 || !ok || chk != sum+8*' ' {
		return nil // not ASCII, or a bad checksum
	}
	var num [7]int64
	for k, f := range [7][2]int{{100, 108}, {108, 116}, {116, 124}, {124, 136}, {136, 148}, {329, 337}, {337, 345}} {
		if num[k], ok = fastOctal(blk[f[0]:f[1]], true); !ok {
			return nil
		}
	}
	hdr := &tar.Header{
		Typeflag: typ,
		Name:     cString(blk[0:100]),
		Linkname: cString(blk[157:257]),
		Mode:     num[0],
		Uid:      int(num[1]),
		Gid:      int(num[2]),
		Size:     num[3],
		ModTime:  time.Unix(num[4], 0),
		Uname:    cString(blk[265:297]),
		Gname:    cString(blk[297:329]),
		Devmajor: num[5],
		Devminor: num[6],
		Format:   tar.FormatUSTAR,
	}
	if prefix := cString(blk[345:500]); prefix != "" {
		hdr.Name = prefix + "/" + hdr.Name
	}
	if !filepath.IsLocal(hdr.Name) {
		return nil // archive/tar may refuse it (GODEBUG tarinsecurepath)
	}
	return hdr
}

// fastOctal parses a numeric field as archive/tar does — NULs and spaces
// trimmed at both ends, octal digits between — when it holds nothing else
// and, with nul, ends in NUL (which USTAR requires).
func fastOctal(f []byte, nul bool) (int64, bool) {
	if nul && f[len(f)-1] != 0 {
		return 0, false
	}
	i, j := 0, len(f)
	for i < j && (f[i] == ' ' || f[i] == 0) {
		i++
	}
	for j > i && (f[j-1] == ' ' || f[j-1] == 0) {
		j--
	}
	var v int64
	for _, c := range f[i:j] {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v<<3 | int64(c-'0')
	}
	return v, true
}

// cString is a string field up to its first NUL.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
