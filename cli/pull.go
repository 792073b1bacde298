package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"berth/boot"
	"berth/image"
	"berth/image/registry"
)

// `berth pull` and `berth image push`: images to and from OCI registries.

// registryFlags are the flags pull and push share: where the registry
// settings (and for pull the cache and the public key) come from.
type registryFlags struct {
	config   *string
	insecure *bool
	platform *string
}

func (cmd *command) registryFlags() registryFlags {
	return registryFlags{
		config:   cmd.fs.String("config", "", "take [registries], the [images] cache and public_key from this config `FILE` (default "+boot.DefaultConfig+" when it exists)"),
		insecure: cmd.fs.Bool("insecure", false, "talk plain HTTP to the reference's registry (as insecure = true in its [registries] table)"),
		platform: cmd.fs.String("platform", "", "`OS/ARCH[/VARIANT]` (default: this machine's)"),
	}
}

// load reads the config (when there is one) and the registry settings,
// with --insecure applied to the reference's host.
func (f registryFlags) load(ref string) (*boot.Config, registry.Registries, error) {
	r, err := registry.ParseRef(ref)
	if err != nil {
		return nil, nil, err
	}
	path := *f.config
	if path == "" {
		if _, err := os.Stat(boot.DefaultConfig); err == nil {
			path = boot.DefaultConfig
		}
	}
	cfg := &boot.Config{}
	if path != "" {
		if cfg, err = boot.LoadConfig(path); err != nil {
			return nil, nil, err
		}
	}
	regs := cfg.RegistrySettings()
	if *f.insecure {
		s := regs[r.Host]
		s.Insecure, s.CA = true, ""
		regs[r.Host] = s
	}
	return cfg, regs, nil
}

// pullMain is `berth pull docker://…`.
func pullMain(c *ctx, args []string) int {
	cmd := c.command("pull", "[--platform P] [--cache DIR] [--config FILE] [--pub KEY.pub] [--insecure] [--json] [--progress] docker://HOST[:PORT]/REPO[:TAG][@sha256:HEX]",
		"Pulls an image from an OCI registry into the image cache, verified (a pinned\ndigest before anything else is fetched, every blob against its digest, the\nsignature when a public key is given) before anything is unpacked, and prints\nthe digest the reference resolved to. The host is always explicit.")
	rf := cmd.registryFlags()
	root := cmd.fs.String("cache", "", "cache `DIR` (default: the config's [images] cache, else "+image.DefaultCacheRoot+")")
	pub := cmd.fs.String("pub", "", "refuse the image unless the registry holds its signature by this public `KEY` (default: the config's [images] public_key)")
	asJSON := cmd.fs.Bool("json", false, "print JSON for scripts")
	lines := cmd.fs.Bool("progress", false, "print progress lines even when stderr is not a terminal")
	pos, status := cmd.parse(args, 1, 1)
	if status >= 0 {
		return status
	}
	if _, err := registry.ParseRef(pos[0]); err != nil {
		return cmd.fail("%v", err) // a usage error: nothing was tried
	}
	// With --json a failure is a JSON object on stdout too, as the
	// control verbs' are.
	fail := func(err error) int {
		if *asJSON {
			json.NewEncoder(c.stdout).Encode(map[string]string{"error": err.Error()})
		}
		return c.imageFail(err)
	}
	cfg, regs, err := rf.load(pos[0])
	if err != nil {
		return fail(fmt.Errorf("pull: %w", err))
	}
	if *root == "" {
		*root = cfg.Images.Cache
	}
	if *root == "" {
		*root = image.DefaultCacheRoot
	}
	if *pub == "" {
		*pub = cfg.Images.PublicKey
	}
	made := firstMissing(*root) // what OpenCache creates, removed again if the pull fails
	cache, err := image.OpenCache(*root)
	if err != nil {
		return fail(fmt.Errorf("pull: %w", err))
	}
	progress := c.progress(*lines)
	p, err := registry.Pull(context.Background(), cache, pos[0], registry.Options{
		Platform: *rf.platform, PublicKey: *pub, Registries: regs, Progress: progress, Log: c.stderr})
	if err != nil {
		if made != "" {
			_ = cache.RemoveIfEmpty(made)
		}
		return fail(err)
	}
	p.Release()
	// berth image gc keeps what a config's reference was last pulled as.
	if err := registry.Remember(cache, pos[0], *rf.platform, p.Digest, p.Prepared.Digest); err != nil {
		fmt.Fprintf(c.stderr, "warning: %v\n", err)
	}
	if *asJSON {
		out, _ := json.Marshal(map[string]any{"digest": p.Digest, "manifest": p.Manifest, "image": p.Prepared.Digest,
			"rootfs": p.Rootfs, "cached": p.Cached, "host": p.Host})
		fmt.Fprintln(c.stdout, string(out))
	} else {
		fmt.Fprintln(c.stdout, p.Digest)
	}
	how := "unpacked"
	if p.Cached {
		how = "already cached"
	}
	fmt.Fprintf(c.stderr, "pulled %s from %s: %s as %s in %.2fs\n", pos[0], p.Host, how, p.Prepared.Digest, p.Elapsed.Seconds())
	return exitOK
}

// firstMissing returns the highest directory on the way to dir, dir
// included, that does not exist yet, or "" when dir exists.
func firstMissing(dir string) string {
	dir = filepath.Clean(dir)
	if _, err := os.Lstat(dir); err == nil {
		return ""
	}
	for {
		up := filepath.Dir(dir)
		if up == dir {
			return dir
		}
		if _, err := os.Lstat(up); err == nil {
			return dir
		}
		dir = up
	}
}

// imagePush is `berth image push IMAGE docker://…`.
func imagePush(c *ctx, args []string) int {
	cmd := c.command("image push", "IMAGE docker://HOST[:PORT]/REPO[:TAG] [--platform P] [--sig FILE] [--config FILE] [--insecure] [--progress]",
		"Publishes a berth image as an OCI image whose one layer (tar+zstd) is the\nfile itself, byte for byte, and its signature (IMAGE.sig or --sig FILE) when\nthere is one, as the tag sha256-HEX.sig. Prints the manifest digest.")
	rf := cmd.registryFlags()
	sig := cmd.fs.String("sig", "", "signature `FILE` to push with it (default IMAGE.sig when it exists)")
	lines := cmd.fs.Bool("progress", false, "show upload progress even when stderr is not a terminal")
	pos, status := cmd.parse(args, 2, 2)
	if status >= 0 {
		return status
	}
	_, regs, err := rf.load(pos[1])
	if err != nil {
		return c.imageFail(fmt.Errorf("push: %w", err))
	}
	if *sig == "" {
		if _, err := os.Stat(pos[0] + ".sig"); err == nil {
			*sig = pos[0] + ".sig"
		}
	}
	progress := c.progress(*lines)
	d, err := registry.Push(context.Background(), pos[0], pos[1], registry.PushOptions{Platform: *rf.platform, Signature: *sig, Registries: regs, Progress: progress})
	if err != nil {
		return c.imageFail(err)
	}
	fmt.Fprintln(c.stdout, d)
	if *sig != "" {
		fmt.Fprintf(c.stderr, "pushed %s with its signature %s to %s\n", pos[0], *sig, pos[1])
	} else {
		fmt.Fprintf(c.stderr, "pushed %s to %s\n", pos[0], pos[1])
	}
	return exitOK
}
