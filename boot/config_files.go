package boot

import (
	"path/filepath"
	"strings"

	"berth/image/registry"
)

// FileRef is a file a config names that berth reads when it boots: an
// image, a public key, a signature, a seccomp profile.
type FileRef struct {
	// Key says where the config names it: "container.web.image".
	Key string
	// Path is the path as the config has it: absolute, or relative to
	// the config file's directory.
	Path string
	// SignatureOf, for an image's default signature (IMAGE.sig, which
	// the config does not name), is the FileRef of the image.
	SignatureOf *FileRef
}

// Files lists the files the config names that berth reads at boot, each
// once, in the order of the file: every container's image, the public
// key its image must be signed by and the signature (named, or the
// image's path with ".sig"), and its seccomp profile — an image from a
// registry (docker://…) is no file, nor is its signature; then the [security]
// policy files; then each registry's CA and password file, by host.
func (cfg *Config) Files() []FileRef {
	var refs []FileRef
	seen := map[string]bool{}
	add := func(r FileRef) {
		if r.Path != "" && !seen[r.Path] {
			seen[r.Path] = true
			refs = append(refs, r)
		}
	}
	for _, c := range cfg.Container {
		prefix := "container." + c.Name + "."
		img := FileRef{Key: prefix + "image", Path: c.Image}
		fromRegistry := registry.IsRef(c.Image) // not a file: pulled at boot
		if !fromRegistry {
			add(img)
		}
		key, keyName := c.PublicKey, prefix+"public_key"
		if key == "" {
			key, keyName = cfg.Images.PublicKey, "images.public_key"
		}
		if key != "" {
			add(FileRef{Key: keyName, Path: key})
			switch {
			case fromRegistry: // its signature is in the registry
			case c.Signature != "":
				add(FileRef{Key: prefix + "signature", Path: c.Signature})
			default:
				add(FileRef{Key: prefix + "image (its signature)", Path: strings.TrimSuffix(c.Image, "/") + ".sig", SignatureOf: &img})
			}
		}
		if filepath.IsAbs(c.Seccomp) {
			add(FileRef{Key: prefix + "seccomp", Path: c.Seccomp})
		}
	}
	for _, r := range cfg.Security.policyFiles() {
		add(r)
	}
	for _, r := range cfg.registryFiles() {
		add(r)
	}
	return refs
}
