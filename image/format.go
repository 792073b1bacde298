// Format detection and the constants of the image format; the layout is
// documented in doc.go.

package image

import (
	"bytes"
	"encoding/binary"

	"berth/mmapfs"
)

// Format names reported in Stats.Format.
const (
	FormatBerth   = "berth"   // seekable zstd with a seek table, as written by Pack
	FormatZstd    = "tar.zst" // any other zstd stream
	FormatGzip    = "tar.gz"
	FormatTar     = "tar"
	FormatOCI     = "oci"    // an OCI image layout, as a directory or a tar
	FormatDocker  = "docker" // a docker save archive
	formatUnknown = ""
)

const (
	// DefaultFrameSize is the decompressed size of a data frame. At the
	// level framewriter.go compresses with, 4 MiB frames unpack minbase
	// with about a tenth less CPU than 2 MiB ones and make an image 2.6%
	// smaller, a little smaller than one zstd -3 frame of the whole tar;
	// reading one file through mmapfs decodes twice as much.
	DefaultFrameSize = 4 << 20
	// maxFrameSize keeps frame sizes inside the seek table's u32 fields with
	// room for a header overshoot.
	maxFrameSize = 1 << 30

	tarBlockSize = 512
)

// detectFormat names the container format of the image in m from its
// first block and, for berth images, the footer of its seek table.
func detectFormat(m *mmapfs.Mapping) (string, error) {
	b := make([]byte, min(m.Size(), tarBlockSize))
	if n, err := m.ReadAt(b, 0); n < len(b) {
		return "", err
	}
	if len(b) >= 4 && (binary.LittleEndian.Uint32(b) == mmapfs.ZstdFrameMagic ||
		binary.LittleEndian.Uint32(b)&mmapfs.SkippableMagicMask == mmapfs.SkippableMagicBase) {
		// A seekable footer makes it a berth image; a damaged table is then
		// an error, not a reason to guess another format.
		seekable, err := mmapfs.HasSeekTable(m, m.Size())
		if err != nil || !seekable {
			return FormatZstd, err
		}
		return FormatBerth, nil
	}
	return formatOf(b), nil
}

// formatOf names the format of a file that is not zstd from its first
// block.
func formatOf(b []byte) string {
	switch {
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
