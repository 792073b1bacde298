package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Limits bound what Unpack accepts from an image, so a hostile or broken one
// fails with a clear error instead of exhausting memory or disk. A zero field
// takes the default given beside it.
type Limits struct {
	// MaxEntries is the most tar entries an image may hold.
	// Default 1,000,000.
	MaxEntries int
	// MaxBytes is the most regular-file data an image may unpack to, summed
	// over all entries. Default: the space free for berth on the
	// destination's filesystem (statfs) less a reserve of 5% of its size
	// (at most 256 MiB), so an unpack never fills the disk; 64 GiB when
	// that cannot be read.
	MaxBytes int64
	// MaxHeaderBytes is the most bytes one entry's header may take,
	// counting its PAX and GNU long-name blocks. Default 1 MiB (archive/tar
	// refuses bigger special headers by itself anyway).
	MaxHeaderBytes int64
	// MaxWindow is the largest zstd window a streamed .tar.zst may ask
	// for, which is what its decoder allocates. Default 128 MiB (enough for
	// `zstd --ultra -22` and `--long=27`).
	MaxWindow uint64
	// MaxFrameBytes is the largest decompressed frame of a seekable image
	// that is decoded whole in memory and in parallel; images with bigger
	// frames are decoded as a stream instead. Default 32 MiB.
	MaxFrameBytes int64

	bytesWhy string // how MaxBytes was chosen, for its error
}

// Default limits; see Limits.
const (
	DefaultMaxEntries     = 1_000_000
	DefaultMaxBytes       = 64 << 30
	DefaultMaxHeaderBytes = 1 << 20
	DefaultMaxWindow      = 128 << 20
	DefaultMaxFrameBytes  = 32 << 20
)

// forDest returns l with defaults, MaxBytes from the free space of dest's
// filesystem (or of its nearest existing parent) when it is not set.
func (l Limits) forDest(dest string) (Limits, error) {
	if l.MaxBytes > 0 {
		return l.withDefaults(), nil
	}
	l = l.withDefaults()
	dir := dest
	var st unix.Statfs_t
	for {
		err := unix.Statfs(dir, &st)
		if err == nil {
			break
		}
		if err != unix.ENOENT || dir == filepath.Dir(dir) {
			return l, nil // keep the fixed default
		}
		dir = filepath.Dir(dir)
	}
	total := int64(st.Blocks) * int64(st.Bsize)
	reserve := min(total/20, 256<<20)
	l.MaxBytes = max(int64(st.Bavail)*int64(st.Bsize)-reserve, 0)
	l.bytesWhy = fmt.Sprintf(" (the free space of %s less a %d MiB reserve)", dir, reserve>>20)
	return l, nil
}

// Kernel limits on names, not configurable.
const (
	maxPathLen      = 4095 // PATH_MAX less the terminating NUL
	maxComponentLen = 255  // NAME_MAX
	maxDevMajor     = 1<<12 - 1
	maxDevMinor     = 1<<20 - 1
)

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultMaxEntries
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxWindow == 0 {
		l.MaxWindow = DefaultMaxWindow
	}
	if l.MaxFrameBytes <= 0 {
		l.MaxFrameBytes = DefaultMaxFrameBytes
	}
	return l
}

// Errors for names that may not be unpacked.
var (
	errAbsoluteName = errors.New("absolute name refused")
	errDotDotName   = errors.New(`name with ".." refused`)
	errEmptyName    = errors.New("empty name")
	errNulName      = errors.New("name contains a NUL byte")
)

// entryPath turns a tar name into a clean path relative to the destination:
// "./a//b/" becomes "a/b" and the root itself becomes "." — named "./",
// ".", or "/" as umoci writes it (GNU tar and containerd take "/" as the
// root too). Any other absolute name, ".." components and names the kernel
// could not take are refused rather than rewritten, so nothing can be
// aimed outside the destination by name.
func entryPath(name string) (string, error) {
	switch {
	case name == "":
		return "", errEmptyName
	case strings.IndexByte(name, 0) >= 0:
		return "", errNulName
	case name[0] == '/' && strings.Trim(name, "/.") == "" && !strings.Contains(name, ".."):
		return ".", nil // "/", "/./", "//"
	case name[0] == '/':
		return "", errAbsoluteName
	case len(name) > maxPathLen:
		return "", fmt.Errorf("name is %d bytes, longer than PATH_MAX", len(name))
	}
	clean := true
	for part := range strings.SplitSeq(name, "/") {
		switch part {
		case "..":
			return "", errDotDotName
		case "", ".":
			clean = false
		}
		if len(part) > maxComponentLen {
			return "", fmt.Errorf("name component of %d bytes is longer than NAME_MAX", len(part))
		}
	}
	if clean {
		return name, nil
	}
	parts := make([]string, 0, strings.Count(name, "/")+1)
	for part := range strings.SplitSeq(name, "/") {
		if part != "" && part != "." {
			parts = append(parts, part)
		}
	}
	if len(parts) == 0 {
		return ".", nil
	}
	return strings.Join(parts, "/"), nil
}

// MaxLayers bounds the layers of an image in every format that lists
// them (an OCI layout's manifest, a docker save archive's manifest.json, a
// registry's manifest): berth opens, hashes and merges each, so a manifest
// of 100,000 tiny layers would cost as much as that many images.
const MaxLayers = 256

// checkLayerCount refuses a manifest of more than MaxLayers layers; its
// caller names the manifest.
func checkLayerCount(n int) error {
	if n > MaxLayers {
		return fmt.Errorf("%d layers, at most %d", n, MaxLayers)
	}
	return nil
}

// MaxJSONObjects bounds the objects of a JSON document berth decodes from
// an image or a registry (an index, a manifest, a config): decoding makes
// each a Go value of a few hundred bytes before any count of the document
// is checked, and a 4 MiB one of "{}," is 1.4 million of them.
const MaxJSONObjects = 1 << 16

// DecodeJSON decodes the JSON document b into v, as json.Unmarshal, after
// refusing one of more than MaxJSONObjects objects. It counts '{' bytes,
// those in strings too: an upper bound.
func DecodeJSON(b []byte, v any) error {
	if n := bytes.Count(b, []byte{'{'}); n > MaxJSONObjects {
		return fmt.Errorf("over %d JSON objects (%d)", MaxJSONObjects, n)
	}
	return json.Unmarshal(b, v)
}
