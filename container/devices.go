package container

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Device is a host device node passed through into a container, at the
// same path. Its cgroup rule allows reading and writing it.
type Device struct {
	Path  string      `json:"path"`
	Type  byte        `json:"type"` // 'c' or 'b'
	Major uint32      `json:"major"`
	Minor uint32      `json:"minor"`
	Mode  os.FileMode `json:"mode"` // permission bits
	UID   uint32      `json:"uid"`
	GID   uint32      `json:"gid"`
}

// LookupDevice stats a host device node for passthrough.
func LookupDevice(path string) (Device, error) {
	if !filepath.IsAbs(path) || !strings.HasPrefix(filepath.Clean(path), "/dev/") {
		return Device{}, fmt.Errorf("device %s: want an absolute path under /dev", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Device{}, fmt.Errorf("device %s: %w", path, err)
	}
	d := Device{Path: filepath.Clean(path), Major: unix.Major(uint64(st.Rdev)), Minor: unix.Minor(uint64(st.Rdev)),
		Mode: os.FileMode(st.Mode & 0o777), UID: st.Uid, GID: st.Gid}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		d.Type = 'c'
	case unix.S_IFBLK:
		d.Type = 'b'
	default:
		return Device{}, fmt.Errorf("device %s: not a character or block device", path)
	}
	return d, nil
}

// deviceRule allows access to a class of device nodes. A major or minor
// of -1 matches any.
type deviceRule struct {
	typ          byte // 'c', 'b' or 'a' (both)
	major, minor int64
	access       string // subset of "rwm"
}

// v1 renders the rule for a v1 devices.allow file: "c 1:3 rwm".
func (r deviceRule) v1() string {
	num := func(n int64) string {
		if n < 0 {
			return "*"
		}
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%c %s:%s %s", r.typ, num(r.major), num(r.minor), r.access)
}

// defaultDeviceRules allow the OCI default nodes berth creates in /dev
// (mknod included: the init creates them from inside the cgroup), the pty
// master and slaves, and nothing else. The workload itself cannot mknod:
// CAP_MKNOD is not among the default capabilities.
var defaultDeviceRules = []deviceRule{
	{'c', 1, 3, "rwm"}, {'c', 1, 5, "rwm"}, {'c', 1, 7, "rwm"}, // null zero full
	{'c', 1, 8, "rwm"}, {'c', 1, 9, "rwm"}, // random urandom
	{'c', 5, 0, "rwm"}, {'c', 5, 2, "rwm"}, // tty ptmx
	{'c', 136, -1, "rw"}, // /dev/pts/*
}

// deviceRules returns the rules for a container with devs passed through.
func deviceRules(devs []Device) []deviceRule {
	rules := append([]deviceRule(nil), defaultDeviceRules...)
	for _, d := range devs {
		rules = append(rules, deviceRule{d.Type, int64(d.Major), int64(d.Minor), "rwm"})
	}
	return rules
}

// devices checks the host devices passed through: each under /dev, once,
// and not at a path of the /dev berth makes in every container (setupDev).
func (c *specCheck) devices(devs []string) {
	seen := make(map[string]bool, len(devs))
	for i, d := range devs {
		clean := path.Clean(d)
		switch {
		case !path.IsAbs(d) || !strings.HasPrefix(clean, "/dev/") || hasDotDot(d):
			c.add("devices", i, "invalid device %s: want a host path under /dev", Quote(d))
		case seen[clean]:
			c.add("devices", i, "%s is listed twice", Quote(d))
		case ownDevPath(clean):
			c.add("devices", i, "%s: every container's /dev has it already, from berth (null, zero, full, random, urandom, tty, ptmx, fd, stdin, stdout, stderr, pts, shm, mqueue)", Quote(d))
		}
		seen[clean] = true
	}
}

// ownDevPath reports whether the clean path p is one berth makes in a
// container's /dev, or lies under a directory it mounts there.
func ownDevPath(p string) bool {
	top, _, _ := strings.Cut(strings.TrimPrefix(p, "/dev/"), "/")
	switch top {
	case "pts", "shm", "mqueue", "fd", "ptmx", "stdin", "stdout", "stderr":
		return true
	}
	for _, n := range defaultDevices {
		if n.name == top {
			return true
		}
	}
	return false
}
