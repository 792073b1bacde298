package boot

import (
	"path"
	"strconv"
	"strings"
	"time"

	"berth/board"
	"berth/container"
)

// StorageConfig is the [storage] table: the appliance's persistent data
// partition. Once it is mounted, berth's state (the image cache included)
// lives on it, at MOUNT/berth, and the named volumes of [[container.mount]]
// at MOUNT/volumes/NAME.
type StorageConfig struct {
	// Device names the partition: "LABEL=data", "UUID=…", "PARTLABEL=…",
	// "PARTUUID=…" or a path under /dev.
	Device string `toml:"device"`
	// FSType is its filesystem, as the kernel names it (default "ext4").
	FSType string `toml:"fstype"`
	// Mount is where it is mounted (default "/data").
	Mount string `toml:"mount"`
	// Timeout is how long berth waits for the device to appear (default
	// "10s"): SD cards and USB disks appear late.
	Timeout string `toml:"timeout"`
}

// Defaults of [storage].
const (
	DefaultStorageFSType  = "ext4"
	DefaultStorageMount   = "/data"
	DefaultStorageTimeout = 10 * time.Second
	maxStorageTimeout     = 10 * time.Minute
)

// validFSType reports whether s can be a filesystem type as the kernel
// names them: 1 to 32 of a-z, 0-9, "_" and ".", not starting with "_"
// or ".".
func validFSType(s string) bool {
	if s == "" || len(s) > 32 || s[0] == '_' || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// check validates the [storage] table.
func (s *StorageConfig) check(v *validator) {
	if s.Device == "" {
		v.addKey("storage.device", `missing: want device = "LABEL=data" (or UUID=, PARTLABEL=, PARTUUID=, a path under /dev)`)
	} else if _, _, err := board.ParseDevice(s.Device); err != nil {
		v.addKey("storage.device", "%s: %v", quoteValue(s.Device), err)
	}
	if s.FSType != "" && !validFSType(s.FSType) {
		v.addKey("storage.fstype", "%s: want a filesystem type as the kernel names it, such as \"ext4\"", quoteValue(s.FSType))
	}
	if s.Mount != "" {
		if err := checkStorageMount(s.Mount); err != "" {
			v.addKey("storage.mount", "%s: %s", quoteValue(s.Mount), err)
		}
	}
	if s.Timeout != "" {
		if d, err := time.ParseDuration(s.Timeout); err != nil || d < 0 || d > maxStorageTimeout {
			v.addKey("storage.timeout", "invalid duration %s: want 0s to %s", quoteValue(s.Timeout), maxStorageTimeout)
		}
	}
}

// checkStorageMount says what is wrong with a mount point, or "".
func checkStorageMount(p string) string {
	switch {
	case !path.IsAbs(p) || path.Clean(p) != p || strings.IndexByte(p, 0) >= 0:
		return "want a clean absolute path"
	case strings.ContainsAny(p, ",:\\"):
		// berth's state moves there, and overlay options carry its paths.
		return "holds one of , : \\ which the containers' overlay options cannot carry"
	case p == "/":
		return "cannot mount over the root"
	}
	for _, own := range []string{"/proc", "/sys", "/dev", "/run", "/tmp"} {
		if p == own || strings.HasPrefix(p, own+"/") && own != "/run" && own != "/tmp" {
			return "berth mounts " + own + " itself"
		}
	}
	return ""
}

// checkVolumes refuses a volume without a [storage] table to hold it,
// and a bind source inside the volumes or berth's state on the data
// partition: containers write there, and one could rename directories on
// the way (symlinks are refused when the source is opened) so that
// another binds something else than its config names. A
// volume is bound by name (volume = NAME), from a handle berth opens
// without following any symlink.
func (cfg *Config) checkVolumes(v *validator) {
	for i, c := range cfg.Container {
		for j, m := range c.Mount {
			key := "container#" + strconv.Itoa(i) + ".mount#" + strconv.Itoa(j)
			switch {
			case m.Volume != "" && cfg.Storage == nil:
				v.addKey(key+".volume", "volume %s needs a [storage] table: volumes live on the data partition", container.Quote(m.Volume))
			case m.Source != "" && cfg.Storage != nil:
				if under := cfg.Storage.containerWritten(m.Source); under != "" {
					v.addKey(key+".source", "%s is inside %s, which containers write: mount the volume by name (volume = NAME)",
						container.Quote(m.Source), under)
				} else if held := cfg.Storage.stateBelow(m.Source); held != "" && !m.Readonly {
					v.addKey(key+".source", "%s holds %s, berth's state: a container writing there could make berth misbehave at the next boot; bind it with readonly = true, or mount a volume by name",
						container.Quote(m.Source), held)
				}
			}
		}
	}
}

// checkCacheBinds refuses what would let a container write the image
// cache its config names ([images] cache): berth mounts the trees there
// as other containers' read-only lower layers, and trusts a tree it
// finds there as unpacked already. A writable bind whose source is the
// cache, lies inside it or holds it is refused, as is a cache inside
// the data partition's volumes. The default cache is STATE/images: with
// [storage], the storage checks keep bind sources out of STATE; without,
// the cache and STATE are checked here as /var/lib/berth (berth boot
// --state moves it; the check stays on the default). Paths are compared
// as written: where berth boot starts a container, ownTrees checks the
// handles it opened.
func (cfg *Config) checkCacheBinds(v *validator) {
	cache := cfg.Images.Cache
	if cache == "" && cfg.Storage != nil {
		cache = path.Join(cfg.Storage.MountPoint(), stateSubdir, "images") // checkVolumes keeps binds out of it
	}
	if cache == "" {
		cache = path.Join(DefaultStateDir, "images")
	}
	if !path.IsAbs(cache) {
		return
	}
	cache = path.Clean(cache)
	if cfg.Storage != nil {
		if vols := path.Join(cfg.Storage.MountPoint(), volumesSubdir); pathWithin(cache, vols) {
			v.addKey("images.cache", "%s is inside %s, which containers write: a container could change the images others run from",
				container.Quote(cache), vols)
		}
	}
	for i, c := range cfg.Container {
		for j, m := range c.Mount {
			src := path.Clean(m.Source)
			if m.Source == "" || m.Readonly || !path.IsAbs(src) {
				continue
			}
			key := "container#" + strconv.Itoa(i) + ".mount#" + strconv.Itoa(j) + ".source"
			switch {
			case cfg.Storage != nil && cfg.Images.Cache == "":
			case pathWithin(src, cache) || pathWithin(cache, src):
				v.addKey(key, "%s overlaps the image cache %s (images.cache): a container writing there could change the images others run from; bind it with readonly = true",
					container.Quote(m.Source), cache)
			case cfg.Storage == nil && (pathWithin(src, DefaultStateDir) || pathWithin(DefaultStateDir, src)):
				v.addKey(key, "%s overlaps berth's state %s: a container writing there could change what berth boots; bind it with readonly = true",
					container.Quote(m.Source), DefaultStateDir)
			}
		}
	}
}

// containerWritten is the directory of the data partition that holds p
// and that containers write (MOUNT/volumes, MOUNT/berth), or "".
func (s *StorageConfig) containerWritten(p string) string {
	p = path.Clean(p)
	for _, d := range []string{path.Join(s.MountPoint(), volumesSubdir), path.Join(s.MountPoint(), stateSubdir)} {
		if pathWithin(p, d) {
			return d
		}
	}
	return ""
}

// stateBelow is MOUNT/berth when p holds it (p is MOUNT or one of its
// parents), or "": a writable bind of p would let a container write
// berth's state.
func (s *StorageConfig) stateBelow(p string) string {
	p = path.Clean(p)
	d := path.Join(s.MountPoint(), stateSubdir)
	if p == "/" || strings.HasPrefix(d, p+"/") {
		return d
	}
	return ""
}

// FileSystem is the partition's filesystem type: fstype, or the default.
func (s *StorageConfig) FileSystem() string {
	if s.FSType == "" {
		return DefaultStorageFSType
	}
	return s.FSType
}

// MountPoint is where the partition is mounted: mount, or the default.
func (s *StorageConfig) MountPoint() string {
	if s.Mount == "" {
		return DefaultStorageMount
	}
	return s.Mount
}

// timeout is how long berth waits for the device: timeout, or the
// default.
func (s *StorageConfig) timeout() time.Duration {
	if d, err := time.ParseDuration(s.Timeout); err == nil && s.Timeout != "" {
		return d
	}
	return DefaultStorageTimeout
}
