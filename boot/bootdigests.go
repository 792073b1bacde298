package boot

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"berth/image"
)

// Images verified when the boot image was built. `berth initramfs`
// hashes every image file it puts in the initramfs and lists the digests
// in BootDigests. The initramfs is loaded by the bootloader and the
// kernel as part of the boot image, with berth itself and its config: it
// is trusted as they are (a boot image that can be altered can have its
// berth replaced), so hashing its images again at every boot proves
// nothing more, and under emulation it was the largest step of the boot.
// As PID 1 on the initramfs, berth therefore takes these digests as the
// files' own (image.Cache.Remember) before any container runs: a pin
// (digest =) and a signature are checked against them as against a
// computed digest, and every frame's checksum and every entry's checks
// still apply when the image is unpacked. A file that is not the one
// listed — another size, another filesystem such as a data partition
// mounted over its directory, or changed since the boot — is hashed as
// before.

// BootDigests is where the initramfs lists its images' digests.
const BootDigests = "/etc/berth.digests"

// maxBootDigests bounds the list berth reads: 1 MiB, thousands of images.
const maxBootDigests = 1 << 20

// BootDigest is one image file of the boot image.
type BootDigest struct {
	// Path is the file's absolute path on the appliance.
	Path string
	// Size is its length in bytes, Digest its sha256 ("sha256:HEX").
	Size   int64
	Digest string
}

// FormatBootDigests writes ds as BootDigests holds them: one line per
// file, "DIGEST SIZE PATH".
func FormatBootDigests(ds []BootDigest) ([]byte, error) {
	var b bytes.Buffer
	for _, d := range ds {
		if err := d.check(); err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s %d %s\n", d.Digest, d.Size, d.Path)
	}
	return b.Bytes(), nil
}

// ParseBootDigests reads what FormatBootDigests wrote; an error names the
// line that is wrong.
func ParseBootDigests(data []byte) ([]BootDigest, error) {
	var ds []BootDigest
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" && len(data) == 0 {
			break
		}
		digest, rest, ok1 := strings.Cut(line, " ")
		size, p, ok2 := strings.Cut(rest, " ")
		n, err := strconv.ParseInt(size, 10, 64)
		if !ok1 || !ok2 || err != nil {
			return nil, fmt.Errorf("%s line %d: want \"DIGEST SIZE PATH\", got %q", BootDigests, i+1, line)
		}
		d := BootDigest{Path: p, Size: n, Digest: digest}
		if err := d.check(); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", BootDigests, i+1, err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

// check refuses what a line cannot hold or berth would not trust.
func (d BootDigest) check() error {
	switch {
	case !path.IsAbs(d.Path) || path.Clean(d.Path) != d.Path || strings.ContainsAny(d.Path, "\n\x00"):
		return fmt.Errorf("image path %q: want an absolute, clean path on one line", d.Path)
	case d.Size < 0:
		return fmt.Errorf("image %s: size %d", d.Path, d.Size)
	}
	if err := image.CheckDigest(d.Digest); err != nil {
		return fmt.Errorf("image %s: %w", d.Path, err)
	}
	return nil
}

// rememberBootDigests gives the image cache the digests of the images in
// the initramfs, as PID 1 on it: for each file still on the initramfs
// (the root's filesystem), as the list says it is.
func (s *supervisor) rememberBootDigests() {
	data, err := readLimited(BootDigests, maxBootDigests)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.b.log.Printf("warning: %s: %v; images are hashed at boot", BootDigests, err)
		}
		return
	}
	ds, err := ParseBootDigests(data)
	if err != nil {
		s.b.log.Printf("warning: %v; images are hashed at boot", err)
		return
	}
	var root unix.Stat_t
	if err := unix.Stat("/", &root); err != nil {
		s.b.log.Printf("warning: %v; images are hashed at boot", err)
		return
	}
	cache, err := s.imageCache(s.b.cfg)
	if err != nil {
		s.b.log.Printf("warning: %v", err)
		return
	}
	for _, d := range ds {
		if err := cache.Remember(d.Path, d.Digest, d.Size, uint64(root.Dev)); err != nil {
			s.b.log.Printf("boot image lists %s, which is hashed at boot: %v", d.Path, err)
			continue
		}
		s.b.log.Printf("boot image lists %s as %s, computed when it was built: not hashed again", d.Path, short(d.Digest))
	}
}
