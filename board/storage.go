package board

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The data partition. berth finds it as blkid would, without udev: each
// block device of /sys/class/block is probed (blockprobe.go) until one
// matches the configured name, loading the drivers of storage devices that
// have none meanwhile (storagedrivers.go); it is then mounted with
// noatime, nodev and nosuid. berth never formats, checks or repairs it.

// DeviceKinds are the ways a device can be named, besides a path under
// /dev: by the label or UUID its filesystem carries, by the name or
// unique GUID of its GPT partition.
var DeviceKinds = []string{"LABEL", "UUID", "PARTLABEL", "PARTUUID"}

// ParseDevice splits a device name: "LABEL=data" gives ("LABEL", "data"),
// a path gives ("", path). It checks the value's form: a label of 1-255
// bytes (a GPT name of 1-36 characters), a UUID as blkid prints it (ext's
// 8-4-4-4-12 hex or vfat's XXXX-XXXX), a PARTUUID of 8-4-4-4-12 hex, or an
// absolute path under /dev without "..". Its errors do not repeat the
// name, which may be long: the caller quotes it.
func ParseDevice(s string) (kind, value string, err error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || strings.HasPrefix(s, "/") {
		if !strings.HasPrefix(s, "/dev/") || filepath.Clean(s) != s || strings.ContainsAny(s, "\x00\n") {
			return "", "", errors.New("want LABEL=, UUID=, PARTLABEL=, PARTUUID= or a clean path under /dev")
		}
		return "", s, nil
	}
	switch k {
	case "LABEL", "PARTLABEL":
		n, max := len(v), 255
		if k == "PARTLABEL" {
			n, max = len([]rune(v)), 36
		}
		if n == 0 || n > max || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return "", "", fmt.Errorf("%s: want 1-%d printable characters", k, max)
		}
	case "UUID", "PARTUUID":
		if !isUUID(v) && !(k == "UUID" && isFATID(v)) {
			what := "8-4-4-4-12 hex digits"
			if k == "UUID" {
				what += " (or vfat's XXXX-XXXX)"
			}
			return "", "", fmt.Errorf("%s: want %s", k, what)
		}
	default:
		return "", "", errors.New("unknown kind before '=': want LABEL, UUID, PARTLABEL or PARTUUID")
	}
	return k, v, nil
}

func isUUID(s string) bool  { return hexGroups(s, 8, 4, 4, 4, 12) }
func isFATID(s string) bool { return hexGroups(s, 4, 4) }

// hexGroups reports whether s is groups of hex digits of the given
// lengths joined by '-'.
func hexGroups(s string, lens ...int) bool {
	parts := strings.Split(s, "-")
	if len(parts) != len(lens) {
		return false
	}
	for i, p := range parts {
		if len(p) != lens[i] {
			return false
		}
		if _, err := strconv.ParseUint(p, 16, 64); err != nil {
			return false
		}
	}
	return true
}

// BlockDevice is a block device found for a name.
type BlockDevice struct {
	Path string `json:"path"` // its node, /dev/vda1
	// FS is what its superblock says, when berth recognises it.
	FS *FSInfo `json:"fs,omitempty"`
}

// blockDev is one entry of /sys/class/block.
type blockDev struct {
	name   string // vda1
	node   string // /dev/vda1
	parent string // vda for a partition, "" for a whole disk
	number int    // partition number
	disk   bool   // a whole disk that has partitions
}

// blockDevices lists the block devices with a medium (a size above 0)
// whose nodes exist under /dev and are the devices sysfs names.
func blockDevices() []blockDev {
	ents, _ := os.ReadDir(sysBlock)
	var out []blockDev
	hasParts := map[string]bool{}
	for _, e := range ents {
		dir := filepath.Join(sysBlock, e.Name())
		if readTrim(dir+"/size") == "0" || readTrim(dir+"/size") == "" {
			continue
		}
		d := blockDev{name: e.Name(), node: "/dev/" + strings.ReplaceAll(e.Name(), "!", "/")}
		if n, err := strconv.Atoi(readTrim(dir + "/partition")); err == nil {
			real, _ := filepath.EvalSymlinks(dir)
			d.parent, d.number = filepath.Base(filepath.Dir(real)), n
			hasParts[d.parent] = true
		}
		if !sameDevice(d.node, readTrim(dir+"/dev")) {
			continue // not (yet) in /dev
		}
		out = append(out, d)
	}
	for i := range out {
		out[i].disk = hasParts[out[i].name]
	}
	return out
}

// sameDevice reports whether node is the block device majmin ("254:0").
func sameDevice(node, majmin string) bool {
	var st unix.Stat_t
	if err := unix.Stat(node, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return false
	}
	return fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)) == majmin
}

// findDevice looks once for the device named kind=value (kind "" for a
// path). It returns the devices that match; notes say why a candidate
// could not be read, for the report should none be found.
func findDevice(kind, value string) (found []BlockDevice, notes []string) {
	devs := blockDevices()
	for _, d := range devs {
		switch kind {
		case "":
			if d.node == value {
				found = append(found, withFS(d.node))
			}
		case "LABEL", "UUID":
			if d.disk {
				continue // its partitions carry the filesystems
			}
			fs := withFS(d.node)
			if fs.FS != nil && (kind == "LABEL" && fs.FS.Label == value || kind == "UUID" && strings.EqualFold(fs.FS.UUID, value)) {
				found = append(found, fs)
			}
		case "PARTLABEL", "PARTUUID":
			if d.parent != "" {
				continue
			}
			f, n := gptMatches(devs, d, kind, value)
			found, notes = append(found, f...), append(notes, n...)
		}
	}
	return found, notes
}

// withFS is the device at node with what its superblock says.
func withFS(node string) BlockDevice {
	d := BlockDevice{Path: node}
	f, err := os.Open(node)
	if err != nil {
		return d
	}
	defer f.Close()
	if fs, ok := probeFS(f); ok {
		d.FS = &fs
	}
	return d
}

// ErrDeviceMissing is the error of a device that did not appear in time.
var ErrDeviceMissing = errors.New("missing")

// WaitDevice waits up to timeout for the device name (see ParseDevice) to
// appear, looking every 100 ms and loading the drivers of storage devices
// that have none every 500 ms (SD cards and USB disks appear late). A
// device name that two devices carry is an error at once: berth does not
// guess which disk holds the appliance's data. loaded lists the drivers
// loaded on the way.
func WaitDevice(name string, timeout time.Duration) (dev BlockDevice, loaded []string, err error) {
	kind, value, err := ParseDevice(name)
	if err != nil {
		return dev, nil, fmt.Errorf("device %q: %w", name, err)
	}
	ix, _ := openModIndex("/") // no module index: the kernel has the drivers built in
	tried := map[string]bool{}
	var driverErrs []string
	deadline := time.Now().Add(timeout)
	for round := 0; ; round++ {
		if ix != nil && round%5 == 0 {
			got, errs := ix.loadStorageDrivers("/sys", tried)
			loaded = append(loaded, got...)
			for _, e := range errs {
				driverErrs = append(driverErrs, e.Error())
			}
		}
		found, notes := findDevice(kind, value)
		notes = append(notes, driverErrs...)
		switch {
		case len(found) == 1:
			return found[0], loaded, nil
		case len(found) > 1:
			var paths []string
			for _, f := range found {
				paths = append(paths, f.Path)
			}
			return dev, loaded, fmt.Errorf("%s names %d devices, %s: refusing to guess which holds the data", name, len(found), strings.Join(paths, " and "))
		case !time.Now().Before(deadline):
			err := fmt.Errorf("%w: waited %s for %s", ErrDeviceMissing, timeout, name)
			if len(notes) > 0 {
				err = fmt.Errorf("%w (%s)", err, strings.Join(notes, "; "))
			}
			return dev, loaded, err
		}
		time.Sleep(min(100*time.Millisecond, time.Until(deadline)))
	}
}

// MountFS mounts the filesystem of type fstype on dev at target (created
// 0755 when missing), with noatime, nodev and nosuid, after loading the
// filesystem's module (the alias fs-TYPE, as the kernel asks for it)
// unless the kernel has the type already. A failure carries the kernel's
// own message ("Can't find ext4 filesystem"). It returns the modules
// loaded.
func MountFS(dev, target, fstype string) (loaded []string, err error) {
	mfd, loaded, err := FSMount(dev, target, fstype)
	if err != nil {
		return loaded, err
	}
	defer unix.Close(mfd)
	return loaded, AttachMount(mfd, dev, target)
}

// FSMount is MountFS without the attach: it returns the new mount as an
// fd (fsmount(2)), not yet anywhere in the tree, on which a caller can
// work before it attaches it (AttachMount) or drops it (closes the fd).
// target only names the mount in errors.
func FSMount(dev, target, fstype string) (mfd int, loaded []string, err error) {
	if !hasFilesystem(fstype) {
		if ix, err := openModIndex("/"); err == nil {
			loaded, _ = ix.probe("fs-" + fstype)
		}
	}
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, loaded, fmt.Errorf("mount %s at %s: filesystem type %s: %w", dev, target, fstype, err)
	}
	defer unix.Close(fsfd)
	klog := openKernelLog()
	defer klog.close()
	fail := func(err error) error {
		msgs := append(fsMessages(fsfd), klog.about(filepath.Base(dev))...)
		if len(msgs) == 0 {
			return fmt.Errorf("mount %s at %s as %s: %w", dev, target, fstype, err)
		}
		return fmt.Errorf("mount %s at %s as %s: %w (kernel: %s)", dev, target, fstype, err, strings.Join(msgs, "; "))
	}
	if err := unix.FsconfigSetString(fsfd, "source", dev); err != nil {
		return -1, loaded, fail(err)
	}
	// An ext superblock may ask the kernel to panic on an error
	// (tune2fs -e panic, or errors=panic among its mount options): a
	// disk whose contents someone else wrote would then reset the board
	// at every boot. berth's option, remount-ro, wins over the
	// superblock's; a disk that does not ask for a panic keeps its own.
	if (fstype == "ext2" || fstype == "ext3" || fstype == "ext4") && extPanics(dev) {
		if err := unix.FsconfigSetString(fsfd, "errors", "remount-ro"); err != nil {
			return -1, loaded, fail(err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, loaded, fail(err)
	}
	mfd, err = unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOATIME|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
	if err != nil {
		return -1, loaded, fail(err)
	}
	return mfd, loaded, nil
}

// AttachMount attaches the mount mfd (FSMount) at target, created 0755
// when missing; dev names it in errors.
func AttachMount(mfd int, dev, target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("mount %s at %s: %w", dev, target, err)
	}
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount %s at %s: attach: %w", dev, target, err)
	}
	return nil
}

// extPanics reports whether the ext superblock of dev asks the kernel to
// panic on an error: its s_errors, or errors=panic in its mount options
// string. A superblock berth cannot read is taken to ask for it.
func extPanics(dev string) bool {
	f, err := os.Open(dev)
	if err != nil {
		return true
	}
	defer f.Close()
	var sb [1024]byte
	if _, err := f.ReadAt(sb[:], extSuperOffset); err != nil {
		return true
	}
	le := binary.LittleEndian
	if le.Uint16(sb[56:]) != extMagic {
		return true
	}
	const errorsPanic = 3 // EXT2_ERRORS_PANIC
	return le.Uint16(sb[60:]) == errorsPanic || strings.Contains(","+nulString(sb[512:576])+",", ",errors=panic,")
}

// hasFilesystem reports whether /proc/filesystems lists fstype.
func hasFilesystem(fstype string) bool {
	data, _ := os.ReadFile("/proc/filesystems")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == fstype {
			return true
		}
	}
	return false
}

// fsMessages returns what the kernel said about a failed fsconfig
// through the filesystem context ("e VFS: ..." lines, without the "e ").
func fsMessages(fsfd int) []string {
	var msgs []string
	buf := make([]byte, 256)
	for range 8 {
		n, err := unix.Read(fsfd, buf)
		if err != nil || n <= 0 {
			break
		}
		msg := strings.TrimSpace(string(buf[:n]))
		if len(msg) > 2 && msg[1] == ' ' {
			msg = msg[2:]
		}
		msgs = append(msgs, msg)
	}
	return msgs
}

// kernelLog reads the kernel's messages from a point on: most
// filesystems say why a mount failed only there ("EXT4-fs (vda): VFS:
// Can't find ext4 filesystem").
type kernelLog struct{ fd int }

// openKernelLog opens /dev/kmsg at its end; fd is -1 when it cannot.
func openKernelLog() kernelLog {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return kernelLog{-1}
	}
	if _, err := unix.Seek(fd, 0, 2 /* SEEK_END */); err != nil {
		unix.Close(fd)
		return kernelLog{-1}
	}
	return kernelLog{fd}
}

// about returns up to 4 of the kernel's own messages (facility kern)
// since the log was opened that mention name, each cut to 200 bytes.
func (k kernelLog) about(name string) []string {
	if k.fd < 0 {
		return nil
	}
	var out []string
	buf := make([]byte, 8192) // a record is at most 1 KiB of text and its prefix
	for range 256 {
		n, err := unix.Read(k.fd, buf)
		if err == unix.EPIPE {
			continue // overwritten records: go on with the next
		}
		if err != nil || n <= 0 {
			break
		}
		prefix, msg, ok := strings.Cut(string(buf[:n]), ";")
		pri, _, _ := strings.Cut(prefix, ",")
		if p, err := strconv.Atoi(pri); !ok || err != nil || p >= 8 {
			continue // not the kernel's (berth's own lines are facility user)
		}
		msg, _, _ = strings.Cut(msg, "\n")
		if strings.Contains(msg, name) && len(out) < 4 {
			if len(msg) > 200 {
				msg = msg[:200]
			}
			out = append(out, msg)
		}
	}
	return out
}

func (k kernelLog) close() {
	if k.fd >= 0 {
		unix.Close(k.fd)
	}
}
