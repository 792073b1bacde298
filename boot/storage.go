package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"berth/board"
	"berth/container"
	"berth/image"
)

// The data partition ([storage]). As PID 1, berth waits for it (up to its
// timeout), mounts it and keeps its own state there, MOUNT/berth: the
// image cache, the containers' writable layers, the saved time. Named
// volumes are MOUNT/volumes/NAME. The phase runs before the clock and the
// images, which read and write that state, so the boot waits for the
// partition: a missing one delays the boot by the timeout, after which
// the state stays on the tmpfs and only the containers with volumes fail.
// berth boot on a development host mounts nothing: its volumes live in
// STATE/volumes.

// Names under the data partition's mount point, and the layout's modes:
// both directories are berth's alone (a container reaches a volume only
// as a bind mount).
const (
	stateSubdir   = "berth"
	volumesSubdir = "volumes"
	// newVolumePrefix names a volume being made: no volume name starts
	// with a dot.
	newVolumePrefix = ".new-"
)

// storageState is what the storage phase found.
type storageState struct {
	cfg StorageConfig
	// dev is the device the name resolved to (Path "" when none).
	dev board.BlockDevice
	// mounted is set once the partition is mounted and berth's
	// directories are made on it.
	mounted bool
	// err says why the partition is missing or unusable.
	err error
	// volumes holds the volumes: MOUNT/volumes, or STATE/volumes under
	// berth boot; "" when there is none.
	volumes string
	// hostOnly is set under berth boot, which leaves the host's disks
	// alone.
	hostOnly bool
}

// setupStorage is the storage phase.
func (b *booter) setupStorage() error {
	if b.cfg.Storage == nil {
		return nil
	}
	st := &storageState{cfg: *b.cfg.Storage}
	b.storage = st
	if !b.opts.PID1 {
		st.hostOnly, st.volumes = true, filepath.Join(b.opts.StateDir, volumesSubdir)
		b.log.Printf("storage: %s not mounted: berth boot leaves this host's disks alone; volumes in %s", st.cfg.Device, st.volumes)
		return ensureDirs(b.opts.StateDir, volumesSubdir)
	}
	mount := st.cfg.MountPoint()
	stopPing := b.pingWatchdog() // the wait may outlast the watchdog's timeout
	// A device whose reads hang in the kernel (a failing card, a dead
	// USB disk's retries) must not hold the boot for ever while the
	// watchdog is petted: past the timeout and a grace for the mount,
	// the boot goes on without the partition.
	type found struct {
		dev board.BlockDevice
		err error
	}
	done := make(chan found, 1)
	w := &storageWait{}
	b.goSafe(func() {
		dev, err := b.findAndMount(st.cfg, mount, w)
		done <- found{dev, err}
	})
	var err error
	select {
	case f := <-done:
		st.dev, err = f.dev, f.err
	case <-time.After(st.cfg.timeout() + storageMountGrace):
		if w.abandon() {
			err = fmt.Errorf("no answer from the device within %s and %s to mount it: its reads hang", st.cfg.timeout(), storageMountGrace)
			break
		}
		f := <-done // being attached: the result comes at once
		st.dev, err = f.dev, f.err
	}
	stopPing()
	if err != nil {
		st.err = err
		b.log.Printf("WARNING: storage %s: %v; berth's state and image cache stay in %s, and containers with volumes will not start",
			st.cfg.Device, err, b.opts.StateDir)
		return nil
	}
	st.mounted, st.volumes = true, filepath.Join(mount, volumesSubdir)
	b.opts.StateDir = filepath.Join(mount, stateSubdir)
	b.log.Printf("storage: %s mounted at %s (%s, noatime,nodev,nosuid); berth's state in %s", st.dev.Path, mount, st.cfg.FileSystem(), b.opts.StateDir)
	return nil
}

// storageMountGrace is how long, past [storage] timeout, the boot waits
// for the partition to be found and mounted (a journal replayed on slow
// flash) before it goes on without it.
var storageMountGrace = 2 * time.Minute

// waitDevice is board.WaitDevice; tests replace it. beforeAttach, when
// set (tests), runs between the mount's making and its attach.
var (
	waitDevice   = board.WaitDevice
	beforeAttach func()
)

// storageWait is the boot's wait for the partition: the finder attaches
// the mount only while the boot still waits (commit), and once the boot
// has gone on without it (abandon) drops it unattached.
type storageWait struct {
	mu                   sync.Mutex
	abandoned, committed bool
}

// abandon marks the wait over, unless the mount is being attached: then
// false, and the result is about to come.
func (w *storageWait) abandon() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.committed {
		return false
	}
	w.abandoned = true
	return true
}

// over reports whether the boot has gone on without the partition.
func (w *storageWait) over() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.abandoned
}

// commit runs attach while the boot still waits, and reports whether it
// did. attach does no I/O on the device: abandon never waits on one.
func (w *storageWait) commit(attach func() error) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.abandoned {
		return false, nil
	}
	w.committed = true
	return true, attach()
}

// errAbandoned ends a find or a mount the boot no longer waits for.
var errAbandoned = errors.New("the boot went on without it")

// findAndMount waits for the partition of cfg and mounts it at mount,
// with berth's directories made on it, and returns the device (Path ""
// when none was found); it runs off the boot (setupStorage). The
// directories are made on the mount before it is attached, and a mount
// the boot no longer waits for is dropped unattached: it would hide what
// the boot put under the mount point meanwhile (the state, a cache, bind
// sources).
func (b *booter) findAndMount(cfg StorageConfig, mount string, w *storageWait) (board.BlockDevice, error) {
	start := time.Now()
	dev, loaded, err := waitDevice(cfg.Device, cfg.timeout())
	if len(loaded) > 0 {
		b.log.Printf("storage drivers loaded: %v", loaded)
	}
	if err != nil {
		return board.BlockDevice{}, err
	}
	if w.over() {
		return dev, errAbandoned
	}
	b.log.Printf("storage: %s is %s%s, found after %s", cfg.Device, dev.Path, describeFS(dev.FS), time.Since(start).Round(time.Millisecond))
	mfd, loaded, err := board.FSMount(dev.Path, mount, cfg.FileSystem())
	if len(loaded) > 0 {
		b.log.Printf("filesystem modules loaded: %v", loaded)
	}
	if err != nil {
		return dev, err
	}
	defer unix.Close(mfd)
	root, err := unix.Openat(mfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return dev, fmt.Errorf("open the root of %s: %w", dev.Path, err)
	}
	err = ensureDirsAt(root, mount, stateSubdir, volumesSubdir)
	unix.Close(root)
	if err != nil {
		return dev, err
	}
	if beforeAttach != nil {
		beforeAttach()
	}
	ok, err := w.commit(func() error { return board.AttachMount(mfd, dev.Path, mount) })
	if !ok {
		b.log.Printf("storage: %s answered after the boot went on without it: not mounted", dev.Path)
		return dev, errAbandoned
	}
	return dev, err
}

// describeFS is " (ext4 "data")" for a recognised filesystem.
func describeFS(fs *board.FSInfo) string {
	if fs == nil {
		return ""
	}
	if fs.Label == "" {
		return " (" + fs.Type + ")"
	}
	return fmt.Sprintf(" (%s %q)", fs.Type, fs.Label)
}

// ensureDirs makes each name a directory of parent, mode 0700, unless it
// is one already; what is there under the name and is no directory — a
// symlink planted by whoever wrote to the partition — is refused, never
// followed. Each directory made is durable before ensureDirs returns.
func ensureDirs(parent string, names ...string) error {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", parent, err)
	}
	defer unix.Close(pfd)
	return ensureDirsAt(pfd, parent, names...)
}

// ensureDirsAt is ensureDirs in the directory pfd, which parent names.
func ensureDirsAt(pfd int, parent string, names ...string) error {
	made := false
	for _, name := range names {
		err := unix.Mkdirat(pfd, name, 0o700)
		made = made || err == nil
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("create %s: %w", filepath.Join(parent, name), err)
		}
		fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("%s: %w: not a directory berth made (a symlink?), refusing it", filepath.Join(parent, name), err)
		}
		unix.Close(fd)
	}
	if made {
		if err := unix.Fsync(pfd); err != nil {
			return fmt.Errorf("fsync %s: %w", parent, err)
		}
	}
	return nil
}

// volumesMissing is why a unit cannot get its volumes, or "" when it can:
// it has none, or the partition is there.
func (s *supervisor) volumesMissing(cc ContainerConfig) string {
	st := s.b.storage
	for _, m := range cc.Mount {
		switch {
		case m.Volume == "":
		case st == nil:
			// [storage] came with a reload: it is read at boot.
			return fmt.Sprintf("volume %s: no data partition was mounted at boot", m.Volume)
		case st.volumes == "":
			return fmt.Sprintf("volume %s needs the data partition %s: %v", m.Volume, st.cfg.Device, st.err)
		}
	}
	return ""
}

// collectImages removes the image cache's entries that no container of
// this boot uses (no overlay has them as its lower layer), no kept
// generation needs (the committed, the previous, the one being tried) and
// no registry reference of the config was last pulled as (registry.Recall:
// a pull still waiting for its registry finds its tree there): on the data
// partition, each image update would otherwise leave its predecessor's
// tree behind for good.
func (s *supervisor) collectImages() {
	if cache, keep := s.imagesToKeep(); cache != nil {
		s.gcImages(cache, keep)
	}
}

// imagesToKeep is the cache and the entries it keeps: the kept
// generations' images and what the config's registry references name.
// The cache is nil when nothing is to be collected. An update's goroutine
// calls it on the loop, then gcImages off it.
func (s *supervisor) imagesToKeep() (*image.Cache, map[string]bool) {
	if s.overlayWarned.Load() {
		return nil, nil // private copies: the cache spares the next boot's decode
	}
	cache, err := s.imageCache(s.b.cfg)
	if err != nil {
		s.b.log.Printf("warning: image cache: %v", err)
		return nil, nil
	}
	keep := s.b.gens.keep() // the kept generations' images stay
	for d := range s.b.cfg.pulledEntries(cache) {
		keep[d] = true
	}
	return cache, keep
}

// gcImages removes the cache's trees that keep does not name and no
// overlay uses. It waits for the cache's lock (an unpack under way holds
// it) and removes whole trees: never on the loop.
func (s *supervisor) gcImages(cache *image.Cache, keep map[string]bool) {
	res, err := cache.GC(keep)
	if err != nil {
		s.b.log.Printf("warning: image cache: %v", err)
	}
	if len(res.Removed) > 0 {
		s.b.log.Printf("image cache: removed %d trees no container uses (%s)", len(res.Removed), container.FormatSize(res.Freed))
	}
}

// resolveMounts returns spec with each volume mount turned into a bind
// of its directory, made on first use, and each writable bind's source
// checked, once the start has opened it, to be none of berth's own trees
// (ownTrees); and the handles to close once the container has started.
// volumesMissing has made sure the volumes have a directory.
func (s *supervisor) resolveMounts(spec container.Spec) (container.Spec, func(), error) {
	var handles []*os.File
	done := func() {
		for _, h := range handles {
			h.Close()
		}
	}
	var own ownTrees
	mounts := append([]container.Mount(nil), spec.Mounts...)
	for i, m := range mounts {
		switch {
		case m.Volume != "":
			uid, gid := hostIDs(spec)
			h, err := openVolume(s.b.storage.volumes, m.Volume, uid, gid)
			if err != nil {
				done()
				return spec, nil, err
			}
			handles = append(handles, h)
			mounts[i].Source, mounts[i].Volume, mounts[i].Handle = filepath.Join(s.b.storage.volumes, m.Volume), "", h
		case m.Type != "tmpfs" && !m.Readonly:
			if own == nil {
				own = s.ownTreesFor(s.b.cfg)
			}
			mounts[i].CheckSource = own.bindCheck(m.Source)
		}
	}
	spec.Mounts = mounts
	return spec, done, nil
}

// hostIDs are the host's uid and gid of the container's user: its own
// ids, or those its user namespace maps them to.
func hostIDs(spec container.Spec) (uid, gid int) {
	uid, gid = int(spec.User.UID), int(spec.User.GID)
	if ns := spec.UserNS; ns != nil {
		uid, gid = int(mapID(ns.UIDMap, spec.User.UID)), int(mapID(ns.GIDMap, spec.User.GID))
	}
	return uid, gid
}

// mapID maps a container id to the host's; Validate made sure the maps
// hold it.
func mapID(ms []container.IDMap, id uint32) uint32 {
	for _, m := range ms {
		if id >= m.Container && uint64(id) < uint64(m.Container)+uint64(m.Size) {
			return m.Host + (id - m.Container)
		}
	}
	return id
}

// openVolume opens volume name in dir (O_PATH, without following a
// symlink), making it first when it is missing: as .new-NAME, owned by
// uid:gid, mode 0755, synced, then renamed into place and the directory
// synced, so a power cut leaves no volume or a complete one, never one
// with the wrong owner. An existing volume keeps its owner and content.
func openVolume(dir, name string, uid, gid int) (*os.File, error) {
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("volume %s: open %s: %w", name, dir, err)
	}
	defer unix.Close(dfd)
	path := filepath.Join(dir, name)
	fd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		if err = makeVolume(dfd, name, uid, gid); err != nil {
			return nil, fmt.Errorf("volume %s: create %s: %w", name, path, err)
		}
		fd, err = unix.Openat(dfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("volume %s: %s: %w: not a directory berth made (a symlink?), refusing it", name, path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// makeVolume makes volume name in the directory dfd, atomically.
func makeVolume(dfd int, name string, uid, gid int) error {
	tmp := newVolumePrefix + name
	// Left by a power cut: an empty directory (berth's; no volume name
	// starts with a dot).
	if err := unix.Unlinkat(dfd, tmp, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove %s: %w", tmp, err)
	}
	if err := unix.Mkdirat(dfd, tmp, 0o700); err != nil {
		return err
	}
	fd, err := unix.Openat(dfd, tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, step := range []func() error{
		func() error { return unix.Fchown(fd, uid, gid) },
		func() error { return unix.Fchmod(fd, 0o755) },
		func() error { return unix.Fsync(fd) },
		func() error { return unix.Renameat2(dfd, tmp, dfd, name, unix.RENAME_NOREPLACE) },
		func() error { return unix.Fsync(dfd) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// StorageInfo is the data partition as berth status shows it.
type StorageInfo struct {
	// Device is the name configured: "LABEL=data".
	Device string `json:"device"`
	// Path is the device it resolved to, and FS what its superblock says.
	Path   string        `json:"path,omitempty"`
	FS     *board.FSInfo `json:"fs,omitempty"`
	FSType string        `json:"fstype"`
	Mount  string        `json:"mount"`
	// State is "mounted", "missing" (not found in time), "failed" (found
	// but not mounted or not usable) or "host" (berth boot: not mounted).
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// SizeBytes and FreeBytes are the filesystem's, when mounted; free
	// is what berth and the containers may still use.
	SizeBytes int64 `json:"size_bytes,omitempty"`
	FreeBytes int64 `json:"free_bytes,omitempty"`
	// StateDir is where berth keeps its state; Volumes holds the volumes.
	StateDir string `json:"state_dir"`
	Volumes  string `json:"volumes_dir,omitempty"`
}

// info is berth status's storage, nil without [storage].
func (b *booter) storageInfo() *StorageInfo {
	st := b.storage
	if st == nil {
		return nil
	}
	in := &StorageInfo{
		Device: st.cfg.Device, Path: st.dev.Path, FS: st.dev.FS, FSType: st.cfg.FileSystem(), Mount: st.cfg.MountPoint(),
		StateDir: b.opts.StateDir, Volumes: st.volumes, State: "mounted",
	}
	switch {
	case st.hostOnly:
		in.State = "host"
	case errors.Is(st.err, board.ErrDeviceMissing):
		in.State, in.Error = "missing", st.err.Error()
	case st.err != nil:
		in.State, in.Error = "failed", st.err.Error()
	default:
		var fs unix.Statfs_t
		if err := unix.Statfs(in.Mount, &fs); err == nil {
			in.SizeBytes, in.FreeBytes = int64(fs.Blocks)*int64(fs.Bsize), int64(fs.Bavail)*int64(fs.Bsize)
		}
	}
	return in
}
