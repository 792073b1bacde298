package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"berth/container"
	"berth/image"
)

// A user-namespaced container's overlay has, as its lower layer, the
// cached tree as the namespace sees it, and an upper layer owned by the
// namespace's root: the container sees the image's owners (root is 0),
// writes its own files, and they land on the host with the mapped ids
// (100000 for its root by default) — never as the host's root. The lower
// layer is an idmapped, read-only bind of the cached tree (overlay takes
// idmapped layers from Linux 5.19) at DIR/lower; where the kernel or the
// cache's filesystem cannot idmap (tmpfs before 6.3), it is a copy of the
// tree with its owners shifted, kept in the cache beside the tree
// (image.Cache.Shifted). Nothing is chowned in place.

// NoIDMapEnv, set to 1, makes berth boot and berth run use shifted
// copies instead of idmapped mounts: for tests and for kernels whose
// idmapped overlays misbehave.
const NoIDMapEnv = "BERTH_NO_IDMAP"

// mappedLower returns the lower layer for a container in user namespace
// ns: an idmapped bind of tree at DIR/lower, or a shifted copy.
func (s *supervisor) mappedLower(cache *image.Cache, p image.Prepared, dir string, ns *container.UserNS) (string, error) {
	if os.Getenv(NoIDMapEnv) != "1" {
		lower := filepath.Join(dir, "lower")
		err := idmappedBind(p.Rootfs, lower, ns)
		if err == nil {
			return lower, nil
		}
		if !s.idmapWarned.Swap(true) {
			s.b.log.Printf("warning: idmapped image for a user namespace: %v; containers get shifted copies of their images", err)
		}
	}
	return cache.Shifted(p.Digest, IDShift(ns))
}

// idmappedBind mounts a read-only copy of tree at target, its owners
// shown through a user namespace with ns's maps.
func idmappedBind(tree, target string, ns *container.UserNS) error {
	if err := os.MkdirAll(target, 0o700); err != nil {
		return err
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, tree, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", tree, err)
	}
	detached := os.NewFile(uintptr(fd), tree)
	defer detached.Close()
	userns, err := container.IDMapUserNS(ns)
	if err != nil {
		return err
	}
	defer userns.Close()
	if err := container.IDMapTree(detached, userns); err != nil {
		return err
	}
	ro := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &ro); err != nil {
		return fmt.Errorf("read-only %s: %w", tree, err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", target, err)
	}
	return nil
}

// IDShift is ns's maps as an image.Shift: its key names the maps (a
// hash of them), its function maps a tree's owners.
func IDShift(ns *container.UserNS) image.Shift {
	var text string
	for _, m := range ns.UIDMap {
		text += "u" + m.String() + " "
	}
	for _, m := range ns.GIDMap {
		text += "g" + m.String() + " "
	}
	sum := sha256.Sum256([]byte(text))
	key := hex.EncodeToString(sum[:8])
	mapID := func(maps []container.IDMap, id uint32) (uint32, bool) {
		for _, m := range maps {
			if id >= m.Container && id-m.Container < m.Size {
				return m.Host + (id - m.Container), true
			}
		}
		return 0, false
	}
	return image.Shift{Key: key, Map: func(uid, gid uint32) (uint32, uint32, error) {
		u, ok := mapID(ns.UIDMap, uid)
		g, ok2 := mapID(ns.GIDMap, gid)
		if !ok || !ok2 {
			return 0, 0, fmt.Errorf("owner %d:%d is outside the user namespace's maps", uid, gid)
		}
		return u, g, nil
	}}
}

// unmountLower unmounts DIR/lower when it is a mount, and refuses to go
// on when it still is one: removing DIR must never reach the cache.
func unmountLower(dir string) error { return detachMount(dir, "lower") }

// detachMount lazily unmounts DIR/NAME when it is a mount, and refuses to
// go on when it still is one (another was stacked under it). Neither is
// followed if a symlink: whoever wrote to the data partition (offline, or
// a container it was once bound into) may have planted one there to make
// berth unmount a mount of its choice. DIR is opened without following it
// and NAME unmounted through that handle with UMOUNT_NOFOLLOW; a DIR that
// is missing, a symlink or not a directory holds no mount of berth's.
func detachMount(dir, name string) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unmount %s: open %s: %w", filepath.Join(dir, name), dir, err)
	}
	defer unix.Close(fd)
	path := filepath.Join(dir, name)
	via := fmt.Sprintf("/proc/self/fd/%d/%s", fd, name)
	if err := unix.Unmount(via, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if mountRoot(fd, name) {
		return fmt.Errorf("%s is still a mount point", path)
	}
	return nil
}

// mountRoot reports whether path, relative to dirfd and not followed if
// a symlink, is the root of a mount (statx says so); an empty path is
// dirfd itself.
func mountRoot(dirfd int, path string) bool {
	flags := unix.AT_SYMLINK_NOFOLLOW
	if path == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	var stx unix.Statx_t
	err := unix.Statx(dirfd, path, flags, unix.STATX_BASIC_STATS, &stx)
	return err == nil && stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0
}
