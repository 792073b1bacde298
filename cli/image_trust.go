package cli

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"berth/boot"
	"berth/image"
)

// `berth image digest`, keygen, sign, verify and gc: what an image is,
// who vouches for it, and which cached trees stay.

// imageDigest is `berth image digest IMAGE`.
func imageDigest(args []string) int {
	fs := flag.NewFlagSet("image digest", flag.ContinueOnError)
	platform := fs.String("platform", "", "`OS/ARCH[/VARIANT]` to pick from an OCI index")
	pos, status := imageFlags(fs, args, "digest IMAGE", 1)
	if status >= 0 {
		return status
	}
	d, err := image.Digest(pos[0], *platform)
	if err != nil {
		return imageFail(err)
	}
	fmt.Println(d)
	return exitOK
}

// imageKeygen is `berth image keygen -o NAME`.
func imageKeygen(args []string) int {
	fs := flag.NewFlagSet("image keygen", flag.ContinueOnError)
	out := fs.String("o", "", "write `NAME`.key and NAME.pub (required)")
	if _, status := imageFlags(fs, args, "keygen -o NAME", 0); status >= 0 {
		return status
	}
	if *out == "" {
		fs.Usage()
		return exitUsage
	}
	key, pub, err := image.Keygen(*out)
	if err != nil {
		return imageFail(err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s (keep it secret) and %s\n", key, pub)
	return exitOK
}

// imageSign is `berth image sign --key K IMAGE`.
func imageSign(args []string) int { return imageSignature(args, "sign", "key", "private") }

// imageVerify is `berth image verify --pub P IMAGE`.
func imageVerify(args []string) int { return imageSignature(args, "verify", "pub", "public") }

// imageSignature signs an image or verifies its signature.
func imageSignature(args []string, verb, keyFlag, kind string) int {
	fs := flag.NewFlagSet("image "+verb, flag.ContinueOnError)
	key := fs.String(keyFlag, "", kind+" `KEY` file (required)")
	sig := fs.String("sig", "", "signature `FILE` (default IMAGE.sig)")
	platform := fs.String("platform", "", "`OS/ARCH[/VARIANT]` to pick from an OCI index")
	pos, status := imageFlags(fs, args, verb+" --"+keyFlag+" KEY IMAGE", 1)
	if status >= 0 {
		return status
	}
	if *key == "" {
		fs.Usage()
		return exitUsage
	}
	if verb == "sign" {
		d, err := image.Sign(pos[0], *key, *sig, *platform)
		if err != nil {
			return imageFail(err)
		}
		fmt.Fprintf(os.Stderr, "signed %s\n", d)
		return exitOK
	}
	d, err := image.Verify(pos[0], *key, *sig, *platform)
	if err != nil {
		return imageFail(err)
	}
	fmt.Printf("verified %s\n", d)
	return exitOK
}

// imageRepeated is a flag that may be given several times.
type imageRepeated []string

func (r *imageRepeated) String() string     { return strings.Join(*r, ",") }
func (r *imageRepeated) Set(v string) error { *r = append(*r, v); return nil }

// imageGC is `berth image gc`.
func imageGC(args []string) int {
	fs := flag.NewFlagSet("image gc", flag.ContinueOnError)
	root := fs.String("cache", "", "cache `DIR` (default: the config's [images] cache, else "+image.DefaultCacheRoot+")")
	config := fs.String("config", "", "keep the images this config `FILE` references (default "+boot.DefaultConfig+" unless --keep is given)")
	var keep imageRepeated
	fs.Var(&keep, "keep", "keep `sha256:HEX` (repeatable)")
	if _, status := imageFlags(fs, args, "gc [--cache DIR] [--keep sha256:...]... [--config FILE]", 0); status >= 0 {
		return status
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
			return imageFail(fmt.Errorf("gc: %w (nothing removed)", err))
		}
		if *root == "" {
			*root = cfg.Images.Cache
		}
	}
	if *root == "" {
		*root = image.DefaultCacheRoot
	}
	c, err := image.OpenExistingCache(*root)
	if err != nil {
		return imageFail(fmt.Errorf("gc: %w", err))
	}
	keepSet := make(map[string]bool)
	for _, d := range keep {
		keepSet[d] = true
	}
	if cfg != nil {
		for _, cc := range cfg.Container {
			img := cfg.ImagePath(cc)
			d, err := c.Digest(img, cc.Platform)
			if err != nil {
				return imageFail(fmt.Errorf("gc: %s references %s, whose digest cannot be read (nothing removed): %w", *config, img, err))
			}
			keepSet[d] = true
		}
	}
	res, err := c.GC(keepSet)
	for _, d := range res.InUse {
		fmt.Fprintf(os.Stderr, "kept %s: a mounted container root uses it\n", d)
	}
	for _, d := range res.Removed {
		fmt.Println("removed", d)
	}
	if err != nil {
		return imageFail(err)
	}
	kept := len(res.Kept) + len(res.InUse)
	if len(res.Removed) == 0 {
		fmt.Fprintf(os.Stderr, "gc %s: nothing to remove, kept %s\n", c.Root, plural(kept, "tree"))
	} else {
		fmt.Fprintf(os.Stderr, "gc %s: removed %s, kept %d, freed %s\n", c.Root, plural(len(res.Removed), "tree"), kept, mib(res.Freed))
	}
	return exitOK
}

// plural is "1 tree", "2 trees".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
