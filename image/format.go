// Package image packs a root filesystem into a berth image and unpacks
// images (and ordinary tarballs) safely into a directory.
//
// # On-disk layout of a berth image
//
// A berth image is a POSIX tar stream of the flattened root filesystem,
// compressed as a run of independent zstd frames and closed by the seek table
// of the zstd seekable format. Every byte is readable by `zstd -d` and
// `tar --zstd -xf`, which skip the skippable frames. All integers are little
// endian.
//
//	offset 0        data frame 0       a complete zstd frame (RFC 8878):
//	                                   magic 28 B5 2F FD, frame header with
//	                                   Frame_Content_Size, blocks, and the
//	                                   4-byte content checksum (low 32 bits of
//	                                   XXH64 of the frame's decompressed bytes)
//	                data frame 1 ... data frame N-1
//	D = Σ csize[i]  reserved region    zero or more skippable frames
//	                                   (magic 0x184D2A50..0x184D2A5F, u32 size,
//	                                   payload); empty today, later the berth
//	                                   path index
//	T               seek table frame:
//	  T+0           u32 0x184D2A5E     skippable frame magic
//	  T+4           u32 N*12+9         payload size
//	  T+8+12*i      u32 csize[i]       compressed size of data frame i
//	  T+12+12*i     u32 dsize[i]       decompressed size of data frame i
//	  T+16+12*i     u32 xxh[i]         low 32 bits of XXH64 of frame i's
//	                                   decompressed bytes (same as its
//	                                   content checksum)
//	  T+8+12*N      u32 N              Number_Of_Frames
//	  T+12+12*N     u8  0x80           Seek_Table_Descriptor: bit 7 =
//	                                   checksums present, bits 6..2 reserved
//	                                   (zero), bits 1..0 unused
//	  T+13+12*N     u32 0x8F92EAB1     seekable magic; end of file
//
// A reader finds the seek table from the last 9 bytes, takes the data
// frames to be [0, D) and requires whatever lies between D and T to be
// skippable frames, so an index frame added there later breaks nothing.
//
// # The tar stream
//
// Packed from a directory, entries come in the order of a depth-first walk
// that visits each directory's entries in byte-wise order of their names
// (so "a/x" comes before "a.b"); packed from an archive, in its order.
// The first entry is the root directory "./"; the rest are named relative to
// the root without a "./" prefix, directories with a trailing "/". Owners are
// numeric only (no user or group names), modification times are whole
// seconds, and archive/tar picks USTAR, or PAX/GNU records where a name or
// value does not fit. A file with several links is stored once, under the
// first of its names in walk order; its other names are hardlink entries.
// Sockets are skipped. The stream ends with the two zero blocks of a tar.
//
// # Frame cutting
//
// The tar stream is cut into frames of about FrameSize (default 4 MiB)
// decompressed bytes. A frame is closed at the first entry boundary once it
// holds FrameSize bytes or more, or inside a regular file's data as soon as
// it holds FrameSize bytes and more data follows. A tar header (with its PAX
// or long-name blocks) and an entry's end padding are never split, so every
// frame starts with a header or with file data continuing the previous
// frame's entry. A big file spans several frames, and every frame decodes on
// its own, so frames are decoded in parallel.
package image

import (
	"bytes"
	"encoding/binary"
)

// Format names reported in Stats.Format.
const (
	FormatBerth   = "berth"   // seekable zstd with a seek table, as written by Pack
	FormatZstd    = "tar.zst" // any other zstd stream
	FormatGzip    = "tar.gz"
	FormatTar     = "tar"
	formatUnknown = ""
)

const (
	// DefaultFrameSize is the decompressed size of a data frame.
	DefaultFrameSize = 4 << 20
	// maxFrameSize keeps frame sizes inside the seek table's u32 fields with
	// room for a header overshoot.
	maxFrameSize = 1 << 30

	zstdFrameMagic       = 0xFD2FB528
	skippableMagicMask   = 0xFFFFFFF0
	skippableMagicBase   = 0x184D2A50
	seekTableFrameMagic  = 0x184D2A5E
	seekableFooterMagic  = 0x8F92EAB1
	seekTableFooterSize  = 9
	seekTableEntrySize   = 12 // with checksums
	seekTableEntryNoSum  = 8
	seekTableChecksumBit = 0x80
	seekTableReserved    = 0x7C

	tarBlockSize = 512
)

// detectFormat names the container format of an image from its first bytes
// and, for berth images, its seek table. It never reads past len(b).
func detectFormat(b []byte) string {
	switch {
	case len(b) >= 4 && binary.LittleEndian.Uint32(b) == zstdFrameMagic,
		len(b) >= 4 && binary.LittleEndian.Uint32(b)&skippableMagicMask == skippableMagicBase:
		// A seekable footer makes it a berth image; a damaged table is then
		// an error, not a reason to guess another format.
		if len(b) >= seekTableFooterSize &&
			binary.LittleEndian.Uint32(b[len(b)-4:]) == seekableFooterMagic {
			return FormatBerth
		}
		return FormatZstd
	case len(b) >= 3 && b[0] == 0x1f && b[1] == 0x8b && b[2] == 8:
		return FormatGzip
	case looksLikeTar(b):
		return FormatTar
	}
	return formatUnknown
}

// looksLikeTar accepts a first block carrying the ustar magic or, for old v7
// archives without one, a valid header checksum.
func looksLikeTar(b []byte) bool {
	if len(b) < tarBlockSize {
		return false
	}
	h := b[:tarBlockSize]
	if bytes.HasPrefix(h[257:], []byte("ustar")) {
		return true
	}
	stored, ok := parseOctal(h[148:156])
	if !ok {
		return false
	}
	var sum int64
	for i, c := range h {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	return sum == stored && h[0] != 0
}

// parseOctal reads a NUL- or space-terminated octal field.
func parseOctal(f []byte) (int64, bool) {
	f = bytes.Trim(f, " \x00")
	if len(f) == 0 {
		return 0, false
	}
	var v int64
	for _, c := range f {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v<<3 | int64(c-'0')
	}
	return v, true
}
