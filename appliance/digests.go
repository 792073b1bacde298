package appliance

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"

	"berth/boot"
	"berth/image"
)

// addDigests hashes each image file the initramfs holds and lists the
// digests in boot.BootDigests, so that berth does not hash them again at
// every boot (boot/bootdigests.go says why that is safe). An image whose
// digest is not the one the config pins is refused here, at build time,
// as berth would refuse it at boot. Images on the data partition are not
// in the list: berth hashes those; so are files berth cannot read as
// images, which it refuses at boot (a note says so).
func (b *Built) addDigests(cfg *boot.Config) error {
	placed := map[string]Placed{}
	for _, p := range b.Placed {
		placed[p.Path] = p
	}
	byPath := map[string]boot.BootDigest{}
	unread := map[string]bool{}
	for _, c := range cfg.Container {
		at := appliancePath(c.Image)
		p, ok := placed[at]
		e := b.entries[clean(at)]
		if !ok || unread[at] || e == nil || e.src == (File{}) || e.mode&modeFmt != modeReg {
			continue // on the data partition, or a directory (an OCI layout)
		}
		d, done := byPath[at]
		if !done {
			digest, err := image.Digest(e.src.String(), c.Platform)
			if err != nil {
				unread[at] = true
				b.Notes = append(b.Notes, fmt.Sprintf("%s is not listed in %s, berth will refuse it at boot: %v", at, boot.BootDigests, err))
				continue
			}
			if raw, err := fileDigest(e.src); err != nil || raw != digest {
				// Not a berth image file (berth converts it at boot) or
				// changed already: berth hashes it at boot.
				unread[at] = true
				b.Notes = append(b.Notes, fmt.Sprintf("%s is not listed in %s: its digest is not that of its bytes", at, boot.BootDigests))
				continue
			}
			d = boot.BootDigest{Path: at, Size: e.size, Digest: digest}
			byPath[at] = d
			e.digest = digest
		}
		if c.Digest != "" && !strings.EqualFold(c.Digest, d.Digest) {
			return fmt.Errorf("container %s: image %s is %s, but the config pins %s", c.Name, p.Host, d.Digest, c.Digest)
		}
	}
	if len(byPath) == 0 {
		return nil
	}
	ds := make([]boot.BootDigest, 0, len(byPath))
	for _, d := range byPath {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].Path < ds[j].Path })
	data, err := boot.FormatBootDigests(ds)
	if err != nil {
		return err
	}
	return b.AddData(boot.BootDigests, data, 0o644)
}

// fileDigest is the SHA-256 of f's bytes, as "sha256:HEX".
func fileDigest(f File) (string, error) {
	r, err := f.open()
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("digest %s: %w", f, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
