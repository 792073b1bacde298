package container

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is an extra mount in a container: a bind mount of a host file,
// directory or socket, or a tmpfs.
type Mount struct {
	// Type is "bind" (default) or "tmpfs".
	Type string `json:"type,omitempty"`
	// Source is the host path of a bind mount.
	Source string `json:"source,omitempty"`
	// Volume names a volume of the appliance's data partition instead of
	// a Source: 1-63 of a-z 0-9 _ . -, starting with a letter or digit.
	// Start takes host paths: berth boot resolves a volume into Source
	// and Handle before it starts the container.
	Volume string `json:"volume,omitempty"`
	// Handle, when set, is the bind's source already opened (O_PATH, a
	// directory berth made): it is bound as it is, and Source, not
	// looked up again, only names it in messages.
	Handle *os.File `json:"-"`
	// CheckSource, when set, is given a bind's source each time a start
	// has opened it (each attempt: see Start), before it is bound: an
	// error fails the start. berth boot keeps its own trees out of
	// containers' writable binds with it.
	CheckSource func(src *os.File) error `json:"-"`
	// Target is the path inside the container.
	Target string `json:"target"`
	// Readonly makes the mount read-only, submounts of a bind included.
	Readonly bool `json:"readonly,omitempty"`
	// FollowSymlink lets a bind source with symlinks on its path be
	// bound as what they point to; otherwise a symlink in any of its
	// components is refused.
	FollowSymlink bool `json:"follow_symlink,omitempty"`
	// Size caps a tmpfs, in bytes (default: the kernel's, half of RAM,
	// still charged to the container's memory limit).
	Size int64 `json:"size,omitempty"`
}

// maskedPaths are runc's default masked paths: files are covered by
// /dev/null, directories by an empty read-only tmpfs.
var maskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
}

// readonlyPaths are runc's default read-only paths.
var readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

// userMounts performs the spec's extra mounts inside the root; binds
// holds, for each, the detached bind mount the parent prepared (nil for
// a tmpfs).
func (r *rootMounter) userMounts(mounts []Mount, binds []*os.File) error {
	for i, m := range mounts {
		var src *os.File
		if i < len(binds) {
			src = binds[i]
		}
		if err := r.userMount(m, src); err != nil {
			return err
		}
	}
	return nil
}

func (r *rootMounter) userMount(m Mount, src *os.File) error {
	target := path.Clean(m.Target)
	tree := src
	dir := true
	if m.Type == "tmpfs" {
		data := "mode=0755"
		if m.Size > 0 {
			data += fmt.Sprintf(",size=%d", m.Size)
		}
		attrs := unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
		if m.Readonly {
			attrs |= unix.MOUNT_ATTR_RDONLY
		}
		var err error
		if tree, err = newTmpfs("tmpfs", data, r.selinux, attrs); err != nil {
			return fmt.Errorf("tmpfs at %s: %w", target, err)
		}
		defer tree.Close()
	} else {
		if src == nil {
			return fmt.Errorf("bind mount %s at %s: no source prepared", m.Source, target)
		}
		// The source is the parent's detached copy, read-only already
		// when asked; the target, inside the root, is created as a
		// directory or an empty file to match it.
		var st unix.Stat_t
		if err := unix.Fstat(int(src.Fd()), &st); err != nil {
			return fmt.Errorf("bind mount %s: %w", m.Source, err)
		}
		dir = st.Mode&unix.S_IFMT == unix.S_IFDIR
	}
	mode := createDirs
	if !dir {
		mode = createFile
	}
	h, err := resolveIn(r.root, target, mode)
	if err != nil {
		return fmt.Errorf("mount target %s in %s: %w", target, r.path, err)
	}
	defer h.Close()
	if err := r.checkTarget(target, h); err != nil {
		return err
	}
	if err := attach(tree, h); err != nil {
		if m.Type != "tmpfs" && errors.Is(err, unix.ENOENT) && unlinked(tree) {
			return fmt.Errorf("bind mount source %s %w", m.Source, errSourceReplaced)
		}
		return fmt.Errorf("mount %s at %s: %w", what(m), target, err)
	}
	if m.Type != "tmpfs" {
		if err := makePrivate(tree); err != nil {
			return fmt.Errorf("mount %s at %s: %w", what(m), target, err)
		}
	}
	return nil
}

// errSourceReplaced is a bind whose source was removed, or replaced by
// a rename, after the parent opened it: the kernel mounts no unlinked
// file (move_mount fails with ENOENT). Start then opens the sources anew,
// so that a file another program replaces atomically (the appliance's
// resolv.conf on a DHCP lease) stays bindable.
var errSourceReplaced = errors.New("was removed or replaced (renamed over) while the container started")

// unlinked reports whether the name f was opened by is gone: the file
// has no name left, or (another hard link keeping it) the kernel shows
// its path as deleted.
func unlinked(f *os.File) bool {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) == nil && st.Nlink == 0 {
		return true
	}
	p, err := os.Readlink(fdPath(f))
	return err == nil && strings.HasSuffix(p, " (deleted)")
}

func what(m Mount) string {
	if m.Type == "tmpfs" {
		return "tmpfs"
	}
	return m.Source
}

// ownPath resolves one of runc's masked or read-only paths inside the
// /proc or /sys berth mounted, through the mount's own handle.
func (r *rootMounter) ownPath(p string) (*os.File, error) {
	if rest, ok := strings.CutPrefix(p, "/proc/"); ok {
		return resolveIn(r.proc, rest, noCreate)
	}
	if rest, ok := strings.CutPrefix(p, "/sys/"); ok {
		return resolveIn(r.sys, rest, noCreate)
	}
	return nil, fmt.Errorf("%s: not under /proc or /sys", p)
}

// maskPaths hides runc's masked paths: /dev/null (checked to be the char
// device 1:3) over files, an empty read-only tmpfs over directories.
func (r *rootMounter) maskPaths() error {
	null, err := resolveIn(r.dev, "null", noCreate)
	if err != nil {
		return fmt.Errorf("mask paths: open /dev/null: %w", err)
	}
	defer null.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(null.Fd()), &st); err != nil {
		return fmt.Errorf("mask paths: stat /dev/null: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(uint64(st.Rdev)) != 1 || unix.Minor(uint64(st.Rdev)) != 3 {
		return fmt.Errorf("mask paths: %s/dev/null is not the char device 1:3", r.path)
	}
	for _, p := range maskedPaths {
		h, err := r.ownPath(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = maskPath(h, null)
			h.Close()
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	return nil
}

// maskPath covers h: a directory with an empty read-only tmpfs, anything
// else with null.
func maskPath(h, null *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return err
	}
	var tree *os.File
	var err error
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		tree, err = newMount("tmpfs", "tmpfs", "size=0,mode=0555", attrSafe|unix.MOUNT_ATTR_RDONLY)
	} else {
		tree, err = cloneTree(null, false)
	}
	if err != nil {
		return err
	}
	defer tree.Close()
	return attach(tree, h)
}

// readonlyPaths makes runc's read-only paths read-only bind mounts.
func (r *rootMounter) readonlyPaths() error {
	for _, p := range readonlyPaths {
		h, err := r.ownPath(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			var tree *os.File
			if tree, err = cloneTree(h, true); err == nil {
				if err = attach(tree, h); err == nil {
					err = setReadonly(tree, false)
				}
				tree.Close()
			}
			h.Close()
		}
		if err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
	}
	return nil
}
