package boot

import (
	"path/filepath"
	"strconv"

	"berth/image"
)

// ImagesConfig is the [images] table: where unpacked images are kept and
// what every image must prove.
type ImagesConfig struct {
	// Cache is the image cache directory (default: STATE/images, that is
	// /var/lib/berth/images). Each image is unpacked there once, by
	// digest, and shared read-only by the containers that use it.
	Cache string `toml:"cache"`
	// PublicKey, when set, is an ed25519 public key (PEM) that must have
	// signed every container's image, unless the container names its own
	// public_key.
	PublicKey string `toml:"public_key"`
}

// imageKeys are a container's keys about its image.
type imageKeys struct {
	// Digest pins the image: "sha256:HEX" (see `berth image digest`). A
	// different image is refused before anything is written.
	Digest string `toml:"digest"`
	// PublicKey requires a valid signature by this key (path of a PEM
	// ed25519 public key) in Signature (default: the image path + ".sig").
	PublicKey string `toml:"public_key"`
	Signature string `toml:"signature"`
	// Platform picks from a multi-platform OCI index: "linux/arm64",
	// "linux/arm/v7"… (default: the running architecture).
	Platform string `toml:"platform"`
}

// checkImageKeys validates the [images] table and each container's image
// keys.
func (cfg *Config) checkImageKeys(v *validator) {
	if cfg.Images.Cache != "" && !filepath.IsAbs(cfg.Images.Cache) {
		v.addKey("images.cache", "want an absolute path, got %q", cfg.Images.Cache)
	}
	for i, c := range cfg.Container {
		prefix := "container#" + strconv.Itoa(i) + "."
		if c.Digest != "" {
			if err := image.CheckDigest(c.Digest); err != nil {
				v.addKey(prefix+"digest", "%v", err)
			}
		}
		if c.Platform != "" {
			if _, err := image.ParsePlatform(c.Platform); err != nil {
				v.addKey(prefix+"platform", "%v", err)
			}
		}
		if c.Signature != "" && c.PublicKey == "" && cfg.Images.PublicKey == "" {
			v.addKey(prefix+"signature", "a signature needs a public_key to check it with")
		}
	}
}

// resolve makes a path from the config absolute: a relative one is taken
// from the config file's directory.
func (cfg *Config) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || cfg.path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(cfg.path), p)
}

// prepareOptions are the image cache's options for container c.
func (cfg *Config) prepareOptions(c ContainerConfig) image.PrepareOptions {
	key, sig := c.PublicKey, c.Signature
	if key == "" {
		key = cfg.Images.PublicKey
	}
	return image.PrepareOptions{
		Digest: c.Digest, PublicKey: cfg.resolve(key), Signature: cfg.resolve(sig), Platform: c.Platform,
	}
}
