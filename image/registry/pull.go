package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"berth/image"

	"golang.org/x/sys/unix"
)

// Options tune Pull.
type Options struct {
	// Platform picks from a multi-platform index ("" is the running one).
	Platform string
	// PublicKey (a PEM ed25519 public key) requires the image's berth
	// signature in the registry (see signature.go) before anything is
	// unpacked.
	PublicKey  string
	Registries Registries
	Limits     image.Limits
	Progress   io.Writer // download and unpack progress, nil for none
	Log        io.Writer // what happened: mirrors that failed…; nil for none
}

// Pulled is an image pulled into the cache.
type Pulled struct {
	// Digest is what the reference resolved to: REF@Digest pins it.
	Digest string
	// Manifest is the digest of the platform's image manifest (Digest
	// itself unless the reference names an index).
	Manifest string
	// Host is the registry (or mirror) it came from.
	Host string
	// Prepared is the cache entry, as image.Cache.Prepare returns it: a
	// berth image (one zstd layer holding a berth image file) is keyed
	// by its file's digest, as when it is prepared from a local file;
	// other images by Manifest, as an OCI layout.
	image.Prepared
}

// pullDir is where the blobs of an image manifest are downloaded, in the
// cache's own directory, so that a pull interrupted (even by a reboot)
// resumes: ROOT/.pull/HEX, flock'ed by the pull using it. Nothing there
// is an image until image.Cache.Prepare has unpacked it into an entry.
func pullDir(cache *image.Cache, manifest string) string {
	return filepath.Join(cache.Root, ".pull", strings.TrimPrefix(manifest, "sha256:"))
}

// Resolve returns the digest ref names now (its own when pinned, after
// checking the registry has it), asking the mirrors first.
func Resolve(ctx context.Context, ref string, regs Registries) (string, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return "", err
	}
	_, top, err := firstManifest(ctx, r, regs, io.Discard)
	if err != nil {
		return "", err
	}
	return top.digest, nil
}

// endpoints are the hosts to ask for r: its mirrors in order, then itself.
func endpoints(r Ref, regs Registries) []string {
	return append(append([]string(nil), regs[r.Host].Mirrors...), r.Host)
}

// firstManifest fetches r's manifest from the first endpoint that serves
// it.
func firstManifest(ctx context.Context, r Ref, regs Registries, log io.Writer) (*client, *fetched, error) {
	var errs []error
	for _, host := range endpoints(r, regs) {
		c, err := newClient(host, r.Repo, regs)
		if err == nil {
			var f *fetched
			if f, err = c.fetchManifest(ctx, r.reference(), r.Digest); err == nil {
				return c, f, nil
			}
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if host != r.Host {
			fmt.Fprintf(log, "mirror %s: %v\n", host, err)
		}
		errs = append(errs, err)
	}
	return nil, nil, fmt.Errorf("pull %s: %w", r, errors.Join(errs...))
}

// Pull fetches ref into cache: the manifest (checked against a pinned
// digest before anything else is fetched), the platform's image manifest,
// its config (checked against the platform), every layer (each checked
// against its digest as it lands on disk), the signature when
// opts.PublicKey asks for one; then image.Cache.Prepare unpacks the
// verified files, all or nothing.
func Pull(ctx context.Context, cache *image.Cache, ref string, opts Options) (p Pulled, err error) {
	r, err := ParseRef(ref)
	if err != nil {
		return p, err
	}
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	c, top, err := firstManifest(ctx, r, opts.Registries, log)
	if err != nil {
		return p, err
	}
	p.Digest, p.Host = top.digest, c.ep.host
	img, err := c.pickImage(ctx, top, opts.Platform)
	if err != nil {
		return p, fmt.Errorf("pull %s: %w", r, err)
	}
	p.Manifest = img.digest
	dir := pullDir(cache, img.digest)
	unlock, err := lockPullDir(dir)
	if err != nil {
		return p, fmt.Errorf("pull %s: %w", r, err)
	}
	defer unlock()
	src, signed, err := c.fetchImage(ctx, img, dir, opts)
	if err != nil {
		return p, fmt.Errorf("pull %s: %w", r, err)
	}
	if opts.PublicKey != "" {
		if err := c.verifySignature(ctx, top.digest, signed, dir, opts.PublicKey); err != nil {
			return p, fmt.Errorf("pull %s: %w (nothing unpacked)", r, err)
		}
	}
	po := image.PrepareOptions{Digest: signed, Platform: opts.Platform, Limits: opts.Limits, Progress: opts.Progress, Log: opts.Log}
	if p.Prepared, err = cache.Prepare(src, po); err != nil {
		return p, fmt.Errorf("pull %s: %w", r, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintf(log, "pull %s: removing the downloads: %v\n", r, err)
	}
	return p, nil
}

// lockPullDir creates dir and flocks it for this pull.
func lockPullDir(dir string) (func(), error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o700); err != nil {
		return nil, err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	for {
		if err = unix.Flock(fd, unix.LOCK_EX); err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { unix.Close(fd) }, nil
}

// imageConfig is what berth reads of an image's config.
type imageConfig struct {
	image.Platform
}

// fetchImage downloads img's config and layers into dir and returns what
// to prepare and the digest it is known by: a berth image's file and its
// digest, or an OCI layout of the image and its manifest's digest.
func (c *client) fetchImage(ctx context.Context, img *fetched, dir string, opts Options) (src, digest string, err error) {
	blobs := filepath.Join(dir, "blobs", "sha256")
	cfgDesc := *img.m.Config
	cfgPath := filepath.Join(blobs, strings.TrimPrefix(cfgDesc.Digest, "sha256:"))
	if err := c.download(ctx, cfgDesc, cfgPath, func(int64) {}); err != nil {
		return "", "", fmt.Errorf("config: %w", err)
	}
	cfgBytes, err := readSmall(cfgPath, maxManifest)
	if err != nil {
		return "", "", fmt.Errorf("config: %w", err)
	}
	var cfg imageConfig
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		return "", "", fmt.Errorf("config %s: %w", cfgDesc.Digest, err)
	}
	if ok, err := cfg.Platform.Matches(opts.Platform); err != nil || !ok {
		want, _ := image.ParsePlatform(opts.Platform)
		return "", "", fmt.Errorf("the image's config is for %s, not %s (nothing fetched)", cfg.Platform, want)
	}
	prog := newProgress(opts.Progress, img.m.Layers)
	for i, l := range img.m.Layers {
		path := filepath.Join(blobs, strings.TrimPrefix(l.Digest, "sha256:"))
		if err := c.download(ctx, l, path, prog.tick); err != nil {
			return "", "", fmt.Errorf("layer %d: %w", i, err)
		}
	}
	prog.done()
	if l := img.m.Layers; len(l) == 1 && l[0].MediaType == MediaLayerZstd {
		path := filepath.Join(blobs, strings.TrimPrefix(l[0].Digest, "sha256:"))
		if isBerth, _, err := image.BerthConfig(path); err != nil {
			return "", "", fmt.Errorf("layer 0: %w", err)
		} else if isBerth {
			return path, l[0].Digest, nil
		}
	}
	return dir, img.digest, writeLayout(dir, img)
}

// writeLayout makes dir an OCI image layout of img, whose blobs are there.
func writeLayout(dir string, img *fetched) error {
	blob := filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(img.digest, "sha256:"))
	if err := os.WriteFile(blob, img.bytes, 0o600); err != nil {
		return err
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaOCIIndex,
		"manifests":     []descriptor{{MediaType: img.m.MediaType, Digest: img.digest, Size: int64(len(img.bytes))}},
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o600)
}
