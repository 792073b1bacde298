package cli

import (
	"fmt"
	"path/filepath"
	"strings"

	"berth/boot"
	"berth/image"
	"berth/image/registry"
)

// `berth image digest`, keygen, sign, verify and gc: what an image is,
// who vouches for it, and which cached trees stay.

// imageDigest is `berth image digest IMAGE`.
func imageDigest(c *ctx, args []string) int {
	cmd := c.command("image digest", "IMAGE [--platform P]", "Prints the image's digest: the sha256 of a file, or an OCI image's manifest digest.")
	platform := cmd.fs.String("platform", "", "`OS/ARCH[/VARIANT]` to pick from an OCI index")
	pos, status := cmd.parse(args, 1, 1)
	if status >= 0 {
		return status
	}
	d, err := image.Digest(pos[0], *platform)
	if err != nil {
		return c.imageFail(err)
	}
	fmt.Fprintln(c.stdout, d)
	return exitOK
}

// imageKeygen is `berth image keygen -o NAME`.
func imageKeygen(c *ctx, args []string) int {
	cmd := c.command("image keygen", "-o NAME", "Writes an ed25519 key pair: NAME.key (private, 0600) and NAME.pub (PEM).")
	out := cmd.fs.String("o", "", "write `NAME`.key and NAME.pub (required)")
	if _, status := cmd.parse(args, 0, 0); status >= 0 {
		return status
	}
	if *out == "" {
		return cmd.fail("-o NAME is required: the key files to write")
	}
	key, pub, err := image.Keygen(*out)
	if err != nil {
		return c.imageFail(err)
	}
	fmt.Fprintf(c.stderr, "wrote %s (keep it secret) and %s\n", key, pub)
	return exitOK
}

// imageSign is `berth image sign --key K IMAGE`.
func imageSign(c *ctx, args []string) int { return c.imageSignature(args, "sign", "key", "private") }

// imageVerify is `berth image verify --pub P IMAGE`.
func imageVerify(c *ctx, args []string) int { return c.imageSignature(args, "verify", "pub", "public") }

// imageSignature signs an image or verifies its signature.
func (c *ctx) imageSignature(args []string, verb, keyFlag, kind string) int {
	about := "Writes IMAGE.sig (or --sig FILE), an ed25519 signature of IMAGE's digest."
	if verb == "verify" {
		about = "Checks IMAGE's signature; exit status 1 when it does not hold."
	}
	cmd := c.command("image "+verb, "--"+keyFlag+" KEY IMAGE [--sig FILE] [--platform P]", about)
	key := cmd.fs.String(keyFlag, "", kind+" `KEY` file (required)")
	sig := cmd.fs.String("sig", "", "signature `FILE` (default IMAGE.sig)")
	platform := cmd.fs.String("platform", "", "`OS/ARCH[/VARIANT]` to pick from an OCI index")
	pos, status := cmd.parse(args, 1, 1)
	if status >= 0 {
		return status
	}
	if *key == "" {
		return cmd.fail("--%s KEY is required: the %s key file", keyFlag, kind)
	}
	if verb == "sign" {
		d, err := image.Sign(pos[0], *key, *sig, *platform)
		if err != nil {
			return c.imageFail(err)
		}
		fmt.Fprintf(c.stderr, "signed %s\n", d)
		return exitOK
	}
	d, err := image.Verify(pos[0], *key, *sig, *platform)
	if err != nil {
		return c.imageFail(err)
	}
	fmt.Fprintf(c.stdout, "verified %s\n", d)
	return exitOK
}

// imageRepeated is a flag that may be given several times.
type imageRepeated []string

func (r *imageRepeated) String() string     { return strings.Join(*r, ",") }
func (r *imageRepeated) Set(v string) error { *r = append(*r, v); return nil }

// imageGC is `berth image gc`.
func imageGC(c *ctx, args []string) int {
	cmd := c.command("image gc", "[--cache DIR] [--state DIR] [--keep sha256:…]... [--config FILE]",
		"Removes cached rootfs trees whose digest is neither kept nor referenced by the\nconfig (default /etc/berth.toml unless --keep is given) nor needed by a kept\ngeneration (committed, previous, being tried) nor used by a mounted container\nroot. The cache is the config's [images] cache, else /var/lib/berth/images,\nand must be one.")
	fs := cmd.fs
	root := fs.String("cache", "", "cache `DIR` (default: the config's [images] cache, else "+image.DefaultCacheRoot+")")
	config := fs.String("config", "", "keep the images this config `FILE` references (default "+boot.DefaultConfig+" unless --keep is given)")
	state := fs.String("state", "", "berth's state `DIR`, whose generations' images are kept (default: the directory holding the cache)")
	var keep imageRepeated
	fs.Var(&keep, "keep", "keep `sha256:HEX` (repeatable)")
	if _, status := cmd.parse(args, 0, 0); status >= 0 {
		return status
	}
	// A short or mistyped digest (the log's sha256:4955bf2d7dd3) or state
	// directory keeps nothing: the tree it meant would go. Refused.
	for _, d := range keep {
		if err := image.CheckDigest(d); err != nil {
			return cmd.fail("--keep %q: not a whole sha256:HEX digest (nothing removed)", d)
		}
	}
	if *state != "" {
		if err := boot.CheckStateDir(*state); err != nil {
			return cmd.fail("--state %v (nothing removed)", err)
		}
	}
	// An empty keep set would empty the cache: without --keep, the
	// appliance's own config says what stays.
	if *config == "" && len(keep) == 0 {
		*config = boot.DefaultConfig
	}
	var cfg *boot.Config
	if *config != "" {
		var err error
		if cfg, err = boot.LoadConfig(*config); err != nil {
			return c.imageFail(fmt.Errorf("gc: %w (nothing removed)", err))
		}
		if *root == "" {
			*root = cfg.Images.Cache
		}
	}
	if *root == "" {
		*root = image.DefaultCacheRoot
	}
	cache, err := image.OpenExistingCache(*root)
	if err != nil {
		return c.imageFail(fmt.Errorf("gc: %w", err))
	}
	keepSet := make(map[string]bool)
	for _, d := range keep {
		keepSet[d] = true
	}
	if *state == "" {
		*state = filepath.Dir(filepath.Clean(cache.Root))
	}
	genDigests, err := boot.KeptDigests(*state)
	if err != nil {
		return c.imageFail(fmt.Errorf("gc: the generations in %s cannot be read (nothing removed): %w", *state, err))
	}
	for _, d := range genDigests {
		keepSet[d] = true
	}
	if err := keepConfigImages(cache, cfg, *config, keepSet); err != nil {
		return c.imageFail(err)
	}
	res, err := cache.GC(keepSet)
	for _, d := range res.InUse {
		fmt.Fprintf(c.stderr, "kept %s: a mounted container root uses it\n", d)
	}
	for _, d := range res.Removed {
		fmt.Fprintln(c.stdout, "removed", d)
	}
	if err != nil {
		return c.imageFail(err)
	}
	kept := len(res.Kept) + len(res.InUse)
	if len(res.Removed) == 0 {
		fmt.Fprintf(c.stderr, "gc %s: nothing to remove, kept %s\n", cache.Root, plural(kept, "tree"))
	} else {
		fmt.Fprintf(c.stderr, "gc %s: removed %s, kept %d, freed %s\n", cache.Root, plural(len(res.Removed), "tree"), kept, mib(res.Freed))
	}
	return exitOK
}

// keepConfigImages adds to keep the digest of each image cfg (read from
// file; nil for none) references: a file's, or the entry a registry
// image's last pull made.
func keepConfigImages(cache *image.Cache, cfg *boot.Config, file string, keep map[string]bool) error {
	if cfg == nil {
		return nil
	}
	for _, cc := range cfg.Container {
		img := cfg.ImagePath(cc)
		if registry.IsRef(img) {
			// The entry its last pull made, if any (registry.Remember).
			if _, entry, ok := registry.Recall(cache, img, cc.Platform); ok {
				keep[entry] = true
			}
			continue
		}
		d, err := cache.Digest(img, cc.Platform)
		if err != nil {
			return fmt.Errorf("gc: %s references %s, whose digest cannot be read (nothing removed): %w", file, img, err)
		}
		keep[d] = true
	}
	return nil
}

// plural is "1 tree", "2 trees".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
