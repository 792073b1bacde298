package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"berth/container"
	"berth/image"
	"berth/image/registry"
	"berth/internal/filekind"
)

// Root filesystems. Each image is unpacked once into the image cache
// (STATE/images/sha256-HEX/rootfs, keyed by its digest; see image.Cache)
// and shared: a container gets an overlay mount whose lower layer is the
// cached tree and whose upper layer, its own writes, lives in
// STATE/containers/NAME and is discarded when the container is prepared
// again (at the next boot, or when a reload changes it). An unchanged image
// is therefore never decoded twice, and containers never write to the
// cache. Where the kernel has no overlayfs, each container gets a private
// copy unpacked from the image instead, as before the cache existed.

// cacheRoot is where cfg's image cache is: [images] cache, else
// STATE/images.
func (b *booter) cacheRoot(cfg *Config) string {
	if cfg.Images.Cache != "" {
		return cfg.Images.Cache
	}
	return filepath.Join(b.opts.StateDir, "images")
}

// imageCache opens the cache on first use.
func (s *supervisor) imageCache(cfg *Config) (*image.Cache, error) {
	s.cacheMu.Lock() // the image goroutine, the pulls' and the loop's
	defer s.cacheMu.Unlock()
	root := s.b.cacheRoot(cfg)
	if s.cache != nil && s.cache.Root == root {
		return s.cache, nil
	}
	c, err := image.OpenCache(root) // a new cache root is 0700
	if err != nil {
		return nil, err
	}
	s.cache = c
	if !slices.Contains(s.cacheRoots, root) {
		s.cacheRoots = append(s.cacheRoots, root)
	}
	return c, nil
}

// prepareRootfs readies container cc's root filesystem and returns it
// with what its image says about running it: the image from the cache
// (unpacked now if it is not there yet, pulled first when it is in a
// registry) under a fresh overlay.
func (s *supervisor) prepareRootfs(ctx context.Context, cfg *Config, cc ContainerConfig) (string, image.Config, error) {
	img := cfg.ImagePath(cc)
	// 1. The container's directory, emptied of a previous run. No other
	// host user may reach into it: a setuid binary a container makes
	// would run as root for them (CVE-2021-41091). The container's init
	// needs no path through it either, even as a user namespace's root:
	// it gets its rootfs as a mount (container.Start).
	containers := filepath.Join(s.b.opts.StateDir, "containers")
	if err := privateDir(containers); err != nil {
		return "", image.Config{}, err
	}
	dir := filepath.Join(containers, cc.Name)
	if err := releaseRootfs(dir, s.trash); err != nil {
		return "", image.Config{}, err
	}
	// 2. The image, verified and in the cache.
	cache, err := s.imageCache(cfg)
	if err != nil {
		return "", image.Config{}, err
	}
	p, err := s.prepareImage(ctx, cache, cfg, cc) // generation.go
	if err != nil {
		return "", image.Config{}, err
	}
	// berth image gc keeps the tree once the overlay is mounted on it;
	// until then the lease does.
	defer p.Release()
	switch {
	case p.Stale != "":
		s.b.log.Printf("warning: image %s for %s: %s was unpacked by an older berth: used as it is (%s); unpacked again once no container uses it",
			img, cc.Name, short(p.Digest), p.Stale)
	case p.Cached:
		s.b.log.Printf("image %s for %s: %s already unpacked, nothing decoded (ready in %s)",
			img, cc.Name, short(p.Digest), p.Elapsed.Round(time.Microsecond))
	case p.Replaced:
		s.b.log.Printf("image %s for %s: %s was unpacked by an older berth: unpacked again in its place: %d entries, %s in %s",
			img, cc.Name, short(p.Digest), p.Stats.Entries, container.FormatSize(p.Stats.Bytes), p.Elapsed.Round(time.Microsecond))
	default:
		s.b.log.Printf("image %s for %s: %s unpacked into the cache: %d entries, %s in %s",
			img, cc.Name, short(p.Digest), p.Stats.Entries, container.FormatSize(p.Stats.Bytes), p.Elapsed.Round(time.Microsecond))
	}
	// 3. The container's writable view of it, once overlayfs is loaded;
	// in a user namespace, over the tree as the namespace sees it
	// (rootfs_userns.go).
	rootfs, lower := filepath.Join(dir, "rootfs"), p.Rootfs
	if ns := cc.Spec("").UserNS; ns != nil {
		if lower, err = s.mappedLower(cache, p, dir, ns); err != nil {
			return "", image.Config{}, err
		}
	}
	s.b.waitContainerModules()
	if err := ctx.Err(); err != nil {
		return "", image.Config{}, fmt.Errorf("not mounted: %w (the shutdown stopped waiting)", err)
	}
	err = mountOverlay(lower, dir)
	if err == nil {
		return rootfs, p.Config, nil
	}
	if !s.overlayWarned.Swap(true) {
		s.b.log.Printf("warning: overlay for %s: %v; containers get private copies of their images", cc.Name, err)
	}
	// 4. Without overlayfs: a private copy (of the cache's tree, for an
	// image pulled from a registry: the pull left no file to unpack).
	if err := releaseRootfs(dir, s.trash); err != nil {
		return "", image.Config{}, err
	}
	if registry.IsRef(img) {
		return "", image.Config{}, fmt.Errorf("overlay for %s: %w (an image from a registry is used from the cache only)", cc.Name, err)
	}
	st, err := image.Unpack(img, rootfs, image.UnpackOptions{Digest: p.Digest, Platform: cc.Platform})
	if err != nil {
		return "", image.Config{}, err
	}
	s.b.log.Printf("image %s unpacked for %s: %d entries, %s in %s",
		img, cc.Name, st.Entries, container.FormatSize(st.Bytes), st.Elapsed.Round(time.Microsecond))
	return rootfs, p.Config, nil
}

// mountOverlay mounts DIR/rootfs: lower, with DIR/upper and DIR/work for
// the container's writes.
func mountOverlay(lower, dir string) error {
	upper, work, rootfs := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "rootfs")
	for _, p := range []string{lower, upper, work} {
		// The option string cannot carry these; the kernel would split on them.
		if strings.ContainsAny(p, ",:\\") {
			return fmt.Errorf("path %q holds one of , : \\ which overlay options cannot carry", p)
		}
	}
	// DIR is 0700; the upper directory takes the mode and owner of the
	// image's root, which the overlay's root then shows.
	for _, d := range []string{upper, work, rootfs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(lower, &st); err != nil {
		return fmt.Errorf("overlay lower %s: %w", lower, err)
	}
	if err := os.Lchown(upper, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := os.Chmod(upper, os.FileMode(st.Mode&0o777)); err != nil {
		return err
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if err := unix.Mount("overlay", rootfs, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mount overlay at %s: %w", rootfs, err)
	}
	return nil
}

// privateDir creates dir, or makes an existing one (from an older berth),
// mode 0700.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if fi, lerr := os.Lstat(dir); lerr == nil && !fi.IsDir() {
			return fmt.Errorf("%s is %s, not a directory (a symlink is not followed)", dir, filekind.Of(fi.Mode()))
		}
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return nil
}

// releaseRootfs unmounts DIR/rootfs if it is mounted and removes DIR —
// the container's writes, never the cached image under them —
// through the trash when there is one (t; trash.go), which moves it aside
// now and removes it off the caller's goroutine, else in place.
func releaseRootfs(dir string, t *trash) error {
	// STATE/containers itself must not lead elsewhere either.
	if fi, err := os.Lstat(filepath.Dir(dir)); err == nil && !fi.IsDir() {
		return fmt.Errorf("release %s: %s is %s, not a directory (a symlink is not followed)", dir, filepath.Dir(dir), filekind.Of(fi.Mode()))
	}
	if err := detachMount(dir, "rootfs"); err != nil {
		return err
	}
	if err := unmountLower(dir); err != nil {
		return err
	}
	if t != nil {
		return t.put(dir)
	}
	return removeInPlace(dir, nil)
}

// removeStaleRootfs removes what earlier boots left in STATE/containers
// for containers the config no longer has: on the data partition it
// would otherwise stay for good.
func (s *supervisor) removeStaleRootfs() {
	dir := filepath.Join(s.b.opts.StateDir, "containers")
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return
	}
	// A symlink in its place (planted on the data partition) is not
	// followed: what it points to is not berth's to unmount or remove.
	if err := privateDir(dir); err != nil {
		s.b.log.Printf("warning: %v", err)
		return
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if _, ok := s.units[e.Name()]; ok {
			continue
		}
		if err := releaseRootfs(filepath.Join(dir, e.Name()), s.trash); err != nil {
			s.b.log.Printf("warning: %v", err)
		}
	}
}

// releaseAll releases the containers' root filesystems once they have
// all stopped, through the trash. As PID 1, which must not hold the
// shutdown (nor the watchdog) on a large removal, the trash stops and the
// next boot removes what is left; berth boot on a host removes it all
// before it returns.
func (s *supervisor) releaseAll() {
	for _, name := range s.order {
		dir := filepath.Join(s.b.opts.StateDir, "containers", name)
		if err := releaseRootfs(dir, s.trash); err != nil {
			s.b.log.Printf("warning: %v", err)
		}
	}
	s.trash.close()
	if s.trash != nil && !s.b.opts.PID1 {
		stop := make(chan struct{})
		timer := time.AfterFunc(hostTrashWait, func() { close(stop) })
		s.trash.empty(stop)
		timer.Stop()
	}
}

// hostTrashWait bounds berth boot's last emptying of the trash on a host:
// a container that did not stop may still write into its layer.
const hostTrashWait = time.Minute

// short abbreviates a digest for logs: sha256:0123456789ab.
func short(digest string) string {
	if len(digest) > len("sha256:")+12 {
		return digest[:len("sha256:")+12]
	}
	return digest
}
