package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	return ResolveTo(ctx, ref, regs, "")
}

// ResolveTo is Resolve for a reference whose digest must be want (a
// config's pin; "" for none): a mirror that answers another digest may
// lag behind the registry, so the next endpoint is asked too. It returns
// want when an endpoint resolves ref to it, else what the registry
// itself answered; only an error when the registry did not answer (the
// mirrors' answers in it), as a mirror's answer alone is not the last
// word on a tag.
func ResolveTo(ctx context.Context, ref string, regs Registries, want string) (string, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return "", err
	}
	got := ""
	_, _, err = eachManifest(ctx, r, regs, io.Discard, func(host string, f *fetched) bool {
		if want == "" || f.digest == want {
			got = f.digest
			return true
		}
		if host == r.Host {
			got = f.digest
		}
		return false
	})
	if got != "" && ctx.Err() == nil {
		return got, nil
	}
	return "", err
}

// endpoints are the hosts to ask for r: its mirrors in order, then itself.
func endpoints(r Ref, regs Registries) []string {
	return append(append([]string(nil), regs[r.Host].Mirrors...), r.Host)
}

// firstManifest fetches r's manifest from the first endpoint that serves
// it.
func firstManifest(ctx context.Context, r Ref, regs Registries, log io.Writer) (*client, *fetched, error) {
	return eachManifest(ctx, r, regs, log, func(string, *fetched) bool { return true })
}

// eachManifest fetches r's manifest from each endpoint in turn until take
// accepts one, and returns that one; an error when none was taken, which
// joins the endpoints' errors.
func eachManifest(ctx context.Context, r Ref, regs Registries, log io.Writer, take func(host string, f *fetched) bool) (*client, *fetched, error) {
	var errs []error
	for _, host := range endpoints(r, regs) {
		c, err := newClient(host, r.Repo, regs)
		if err == nil {
			var f *fetched
			if f, err = c.fetchManifest(ctx, r.reference(), r.Digest); err == nil {
				if take(host, f) {
					return c, f, nil
				}
				err = fmt.Errorf("%s answered %s", host, f.digest)
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
// its config (checked against the platform); then, unless the cache has
// the image already, every layer (each checked against its digest as it
// lands on disk); the signature when opts.PublicKey asks for one; then
// image.Cache.Prepare unpacks the verified files, all or nothing.
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
	defer func() {
		if err != nil {
			dropEmptyPull(dir) // before the unlock: a pull waiting makes it again
		}
	}()
	dropOtherPulls(filepath.Dir(dir), filepath.Base(dir), staleDownload, log)
	cfg, err := c.fetchConfig(ctx, img, dir, opts.Platform)
	if err != nil {
		return p, fmt.Errorf("pull %s: %w", r, err)
	}
	var ok bool
	if p.Prepared, ok, err = c.cached(ctx, cache, img, top.digest, cfg, dir, opts.PublicKey); !ok && err == nil {
		p.Prepared, err = c.fetchLayers(ctx, cache, img, top.digest, dir, opts)
	}
	if err != nil {
		return p, fmt.Errorf("pull %s: %w", r, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintf(log, "pull %s: removing the downloads: %v\n", r, err)
	}
	return p, nil
}

// cached returns the cache's entry for img when it has one (keyed by its
// berth layer, or by its manifest), its signature checked when pub asks:
// then no layer is fetched. The config is the one the entry kept when it
// was unpacked, never the registry's: a berth image's signature covers
// its file, whose config frame that is, not the manifest's config, which
// a registry could change under the same signed layer. Only an entry
// keyed by the manifest, which names its config's digest, may take the
// registry's config, when an older berth's entry kept none.
func (c *client) cached(ctx context.Context, cache *image.Cache, img *fetched, top string, cfg []byte, dir, pub string) (image.Prepared, bool, error) {
	keys := []string{img.digest}
	if l := img.m.Layers; len(l) == 1 && l[0].MediaType == MediaLayerZstd {
		keys = []string{l[0].Digest, img.digest}
	}
	for _, k := range keys {
		p, ok, err := cache.Lookup(k)
		if err != nil || !ok {
			continue
		}
		if !p.KeptConfig && k != img.digest {
			p.Release() // pulled again: its config read from its file
			continue
		}
		if pub != "" {
			if err := c.verifySignature(ctx, top, k, dir, pub); err != nil {
				p.Release()
				return p, false, fmt.Errorf("%w (nothing used from the cache)", err)
			}
		}
		if !p.KeptConfig {
			if p.Config, err = image.ParseOCIConfig(cfg); err != nil {
				p.Release()
				return p, false, fmt.Errorf("config: %w", err)
			}
		}
		return p, true, nil
	}
	return image.Prepared{}, false, nil
}

// lockPullDir creates dir and flocks it for this pull. A pull that held
// it before may have removed it, done, while this one waited for the
// lock: then the lock is on a removed directory, and it starts again.
func lockPullDir(dir string) (func(), error) {
	for {
		if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o700); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // a parent removed meanwhile, as above
			}
			return nil, err
		}
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT {
			continue // removed before it was locked (dropOtherPulls): make it again
		}
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
		var locked, now unix.Stat_t
		if err := unix.Fstat(fd, &locked); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		if unix.Lstat(dir, &now) == nil && now.Dev == locked.Dev && now.Ino == locked.Ino {
			return func() { unix.Close(fd) }, nil
		}
		unix.Close(fd) // removed by the pull before: make it again
	}
}

// dropEmptyPull removes a failed pull's download directory when nothing
// was downloaded into it, and ROOT/.pull when that was the last one: a
// pull that failed before its first blob (the registry gone after the
// manifest) leaves no empty tree behind. Only rmdir, which removes no
// directory that holds a file: a partial download stays for the next
// pull to resume.
func dropEmptyPull(dir string) {
	for _, d := range []string{filepath.Join(dir, "blobs", "sha256"), filepath.Join(dir, "blobs"), dir, filepath.Dir(dir)} {
		if unix.Rmdir(d) != nil {
			return
		}
	}
}

// staleDownload is how long a partial download of another image is kept
// for its own pull to resume: a day untouched.
const staleDownload = 24 * time.Hour

// dropOtherPulls removes the downloads of other images under root (the
// cache's .pull) untouched for olderThan, keeping keep's and those another
// pull holds locked. A pull drops the stale ones when it starts, and all
// it may when it needs their room (checkRoom): a registry (or a mirror)
// that serves a new manifest each time a download breaks cannot pile
// partial downloads up on the data partition, and two images pulled by
// turns over a flaky link still resume each other's.
func dropOtherPulls(root, keep string, olderThan time.Duration, log io.Writer) {
	if log == nil {
		log = io.Discard
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Name() == keep {
			continue
		}
		path := filepath.Join(root, e.Name())
		if !e.IsDir() { // not berth's: os.Remove never follows a symlink
			_ = os.Remove(path)
			continue
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		var locked, now unix.Stat_t
		if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil && unix.Fstat(fd, &locked) == nil &&
			unix.Lstat(path, &now) == nil && now.Dev == locked.Dev && now.Ino == locked.Ino &&
			time.Since(lastWrite(path)) >= olderThan {
			if err := os.RemoveAll(path); err != nil {
				fmt.Fprintf(log, "pull: removing the partial download %s: %v\n", path, err)
			} else {
				fmt.Fprintf(log, "pull: removed the partial download of another image (%s)\n", e.Name())
			}
		}
		unix.Close(fd)
	}
}

// imageConfig is what berth reads of an image's config.
type imageConfig struct {
	image.Platform
}

// fetchConfig downloads img's config into dir and checks its platform.
func (c *client) fetchConfig(ctx context.Context, img *fetched, dir, platform string) ([]byte, error) {
	d := *img.m.Config
	path := filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d.Digest, "sha256:"))
	ctx, cancel := smallFetch(ctx)
	defer cancel()
	if err := c.download(ctx, d, path, func(int64) {}); err != nil {
		return nil, fmt.Errorf("config: %w", slowFetch(ctx, "config "+d.Digest, err))
	}
	b, err := readSmall(path, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var cfg imageConfig
	if err := image.DecodeJSON(b, &cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", d.Digest, err)
	}
	if ok, err := cfg.Platform.Matches(platform); err != nil || !ok {
		want, _ := image.ParsePlatform(platform)
		return nil, fmt.Errorf("the image's config is for %s, not %s (no layer fetched)", cfg.Platform, want)
	}
	return b, nil
}

// fetchLayers downloads img's layers into dir, checks the signature when
// opts asks, and prepares the image in the cache: a berth image from its
// file, keyed by its digest; anything else as an OCI layout of the
// downloads, keyed by its manifest's digest.
func (c *client) fetchLayers(ctx context.Context, cache *image.Cache, img *fetched, top, dir string, opts Options) (image.Prepared, error) {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := checkRoom(dir, img.m.Layers); err != nil {
		// Room first, then other images' downloads, however recent.
		dropOtherPulls(filepath.Dir(dir), filepath.Base(dir), 0, opts.Log)
		if err := checkRoom(dir, img.m.Layers); err != nil {
			return image.Prepared{}, err
		}
	}
	prog := newProgress(opts.Progress, "downloading", img.m.Layers)
	for i, l := range img.m.Layers {
		path := filepath.Join(blobs, strings.TrimPrefix(l.Digest, "sha256:"))
		if err := c.download(ctx, l, path, prog.tick); err != nil {
			return image.Prepared{}, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	prog.done()
	src, signed := dir, img.digest
	if l := img.m.Layers; len(l) == 1 && l[0].MediaType == MediaLayerZstd {
		path := filepath.Join(blobs, strings.TrimPrefix(l[0].Digest, "sha256:"))
		isBerth, _, err := image.BerthConfig(path)
		if err != nil {
			return image.Prepared{}, fmt.Errorf("layer 0: %w", err)
		}
		if isBerth {
			src, signed = path, l[0].Digest
		}
	}
	if src == dir {
		if err := writeLayout(dir, img); err != nil {
			return image.Prepared{}, err
		}
	}
	if opts.PublicKey != "" {
		if err := c.verifySignature(ctx, top, signed, dir, opts.PublicKey); err != nil {
			return image.Prepared{}, fmt.Errorf("%w (nothing unpacked)", err)
		}
	}
	// A berth image's blob was hashed as it arrived and renamed into
	// the cache's own directory only then: Prepare need not hash it.
	po := image.PrepareOptions{Digest: signed, Platform: opts.Platform, Limits: opts.Limits, Progress: opts.Progress, Log: opts.Log, Vouched: src != dir}
	return cache.Prepare(src, po)
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

// checkRoom refuses layers whose declared sizes, less what dir holds of
// them already, do not fit in the space free on dir's filesystem, less a
// reserve of 5% of its size (at most 256 MiB), as an unpack keeps: a
// registry could otherwise fill the data partition with one huge layer,
// and the partial download stays there to be resumed.
func checkRoom(dir string, layers []descriptor) error {
	var need int64
	for _, l := range layers {
		need += l.Size // each at most 2^50, 256 of them: no overflow
		path := filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(l.Digest, "sha256:"))
		if _, err := os.Lstat(path); err == nil {
			need -= l.Size // downloaded already
		} else if fi, err := os.Lstat(path + ".partial"); err == nil {
			need -= min(fi.Size(), l.Size)
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil // unknown: the download's own errors stand
	}
	bs := int64(st.Bsize)
	free, reserve := int64(st.Bavail)*bs, min(int64(st.Blocks)*bs/20, 256<<20)
	if need > free-reserve {
		return fmt.Errorf("the layers take %d more bytes, and %s has %d free (keeping %d in reserve)", need, dir, free, reserve)
	}
	return nil
}

// lastWrite is the newest modification time in a download directory (its
// blobs and their partial files), or the zero time.
func lastWrite(dir string) time.Time {
	var t time.Time
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil {
			if fi, err := d.Info(); err == nil && fi.ModTime().After(t) {
				t = fi.ModTime()
			}
		}
		return nil
	})
	return t
}
