package image

import (
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
	// for; its decoder allocates about twice that. Default 1/8 of the
	// machine's memory rounded down to a power of two, at least 8 MiB
	// and at most 128 MiB (enough for `zstd --ultra -22` and `--long=27`
	// from 1 GiB up; see memlimits.go).
	MaxWindow uint64
	// MaxFrameBytes is the largest decompressed frame of a seekable image
	// that is decoded whole in memory and in parallel; images with bigger
	// frames are decoded as a stream instead. Default 1/32 of the
	// machine's memory rounded down to a power of two, at least 4 MiB and
	// at most 32 MiB.
	MaxFrameBytes int64

	bytesWhy  string // how MaxBytes was chosen, for its error
	windowWhy string // how MaxWindow was chosen, for its error
}

// Default limits; see Limits.
const (
	DefaultMaxEntries     = 1_000_000
	DefaultMaxBytes       = 64 << 30
	DefaultMaxHeaderBytes = 1 << 20
	DefaultMaxWindow      = 128 << 20 // the most; see Limits.MaxWindow
	DefaultMaxFrameBytes  = 32 << 20  // the most; see Limits.MaxFrameBytes
)

// forDest returns l with defaults, MaxBytes from the free space of dest's
// filesystem (or of its nearest existing parent) when it is not set; fd,
// when not -1, is dest's handle, asked instead of the path.
func (l Limits) forDest(dest string, fd int) (Limits, error) {
	if l.MaxBytes > 0 {
		return l.withDefaults(), nil
	}
	l = l.withDefaults()
	dir := dest
	var st unix.Statfs_t
	for {
		var err error
		if fd >= 0 && dir == dest {
			err = unix.Fstatfs(fd, &st)
		} else {
			err = unix.Statfs(dir, &st)
		}
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
	return l.memoryDefaults(machineMemory())
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
// aimed outside the destination by name. The path is a string of its
// own, never a part of name: archive/tar cuts a name from its PAX block,
// which may be a megabyte, and a path kept until the unpack ends (a
// directory's, the set of names seen) would keep that block with it.
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
		return strings.Clone(name), nil
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

// Bounds on a JSON document berth decodes from an image or a registry (an
// index, a manifest, a config), checked by DecodeJSON before decoding.
// Every caller reads at most 4 MiB, which bounds memory already; these
// bound what decoding makes of those bytes. MaxJSONObjects: each object
// decodes to a Go value of a few hundred bytes, and a 4 MiB document of
// "{}," is 1.4 million of them. MaxJSONValues: array elements and object
// members, a 4 MiB `[1,1,...]` being 2 million; it leaves room for the
// 16,384 descriptors of a layout's indexes, of about ten values each.
// MaxJSONDepth: nesting of arrays and objects, which real indexes,
// manifests and configs keep under ten (encoding/json's own limit is
// 10,000).
const (
	MaxJSONObjects = 1 << 16
	MaxJSONValues  = 1 << 18
	MaxJSONDepth   = 64
)

// jsonShape is what DecodeJSON bounds of a document, counted outside its
// strings.
type jsonShape struct {
	objects int // the '{'
	values  int // 1 + the ',', '[' and '{': the values, plus one per empty array or object
	depth   int // the deepest nesting of arrays and objects
}

// scanJSON measures b's shape, skipping strings (in which a backslash
// escapes the byte after it). For valid JSON the counts are exact, as
// jsonShape says (FuzzDecodeJSON checks them against encoding/json's
// tokenizer); for invalid JSON they are whatever they are, and
// json.Unmarshal refuses the document before it decodes anything.
func scanJSON(b []byte) jsonShape {
	s := jsonShape{values: 1}
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			if b[i] == '{' {
				s.objects++
			}
			s.values++
			depth++
			s.depth = max(s.depth, depth)
		case '}', ']':
			depth--
		case ',':
			s.values++
		}
	}
	return s
}

// DecodeJSON decodes the JSON document b into v, as json.Unmarshal, after
// refusing one of more than MaxJSONObjects objects, MaxJSONValues values
// or MaxJSONDepth levels of nesting (counted outside strings, see
// scanJSON).
func DecodeJSON(b []byte, v any) error {
	s := scanJSON(b)
	switch {
	case s.objects > MaxJSONObjects:
		return fmt.Errorf("over %d JSON objects (%d)", MaxJSONObjects, s.objects)
	case s.values > MaxJSONValues:
		return fmt.Errorf("over %d JSON values, array elements and object members (%d)", MaxJSONValues, s.values)
	case s.depth > MaxJSONDepth:
		return fmt.Errorf("JSON nested %d levels deep, at most %d", s.depth, MaxJSONDepth)
	}
	return json.Unmarshal(b, v)
}
