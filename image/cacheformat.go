package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cacheFormat is the version of the trees Prepare makes, written in each
// entry beside its rootfs (formatFile). It is raised when an earlier berth
// may have left trees that differ from their images, so that those are
// unpacked again instead of being used as they are:
//
//	1 (no format file): berth before format 2. At boot its control
//	  socket's umask could leak into an image being unpacked at the same
//	  moment: a file came out 0600 and every container that ran it failed
//	  with "permission denied", on every later boot too.
//	2: the socket made on a thread of its own (boot/listen.go).
const cacheFormat = 2

// formatFile is the entry's file holding its cache format.
const formatFile = "format"

// maxFormatFile bounds what is read of a format file.
const maxFormatFile = 64

// entryCurrent reports whether the cache entry dir was made by a berth of
// cacheFormat or a later one. The format file is read as the entry's
// other files are (readSmallFile, never through a symlink): a FIFO there
// would block every boot's Prepare, a device could act when opened. One
// that cannot be read (missing, not a regular file, too large) is an
// older berth's: the entry is unpacked again.
func entryCurrent(dir string) bool {
	b, err := readSmallFile(filepath.Join(dir, formatFile), maxFormatFile, false)
	if err != nil {
		return false
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && v >= cacheFormat
}

// writeFormat writes the format file of an entry being staged at dir.
func writeFormat(dir string) error {
	p := filepath.Join(dir, formatFile)
	if err := os.WriteFile(p, []byte(strconv.Itoa(cacheFormat)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// configFile is the entry's copy of its image's run config, as read from
// the image once verified: a cache hit takes it from there, since the
// image file itself is then not hashed (its digest is remembered) and may
// have been rewritten in a way its identity does not show (a write
// through a shared mapping on tmpfs changes no time).
const configFile = "config.json"

// maxConfigFile bounds configFile: the config frame's bound, as JSON.
const maxConfigFile = 2 * maxConfigFrame

// writeConfig writes an entry's configFile (atomically: it may be added
// to an entry an older berth made).
func writeConfig(dir string, c Config) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, configFile), b, 0o644)
}

// readConfig reads an entry's configFile, never through a symlink.
func readConfig(dir string) (Config, error) {
	var c Config
	b, err := readSmallFile(filepath.Join(dir, configFile), maxConfigFile, false)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", filepath.Join(dir, configFile), err)
	}
	return c, nil
}

// errInUse is returned by replace when a container root uses the older
// tree, or will (a lease on it).
var errInUse = errors.New("the older tree is in use")

// replace puts a finished staging tree in the place of the entry final,
// which an older berth made, in one rename(2) that exchanges the two
// (RENAME_EXCHANGE), and removes the old tree. It takes the entry's lock
// exclusively, without waiting: held shared, it is a lease (a Prepared
// not yet released: its caller is about to mount the tree), or another
// process replacing it holds it (errInUse either way). Under the lock a
// tree that has become current (errRaced) or that a mounted overlay uses
// (errInUse) is left alone. After a crash the old tree sits in a staging
// directory that OpenCache removes.
func (c *Cache) replace(stage *staging, final string) error {
	if err := stage.sync(); err != nil {
		return err
	}
	reached("synced")
	fd, err := lockDir(final, unix.LOCK_EX|unix.LOCK_NB)
	if err == unix.EWOULDBLOCK {
		return errInUse
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", final, err)
	}
	defer unix.Close(fd)
	switch {
	case entryCurrent(final):
		return errRaced
	case c.entryMounted(final):
		return errInUse
	}
	if err := unix.Renameat2(unix.AT_FDCWD, stage.path, unix.AT_FDCWD, final, unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("exchange %s and %s: %w", stage.path, final, err)
	}
	reached("renamed")
	if err := syncDir(c.Root); err != nil {
		return fmt.Errorf("fsync %s: %w", c.Root, err)
	}
	// stage.path is the old tree now, locked by fd; the new one, at final,
	// needs no lock of its own any more. What cannot be removed now is
	// removed as stale once fd is closed.
	stage.release()
	_ = removeTree(stage.path)
	return nil
}

// entryInUse reports whether the entry's tree is in use: leased (a
// Prepared not yet released: its caller is about to mount the tree, or
// an update holds it) or mounted. The caller holds no lease on it: the
// test is an exclusive lock, on a descriptor of its own, not waited for.
func (c *Cache) entryInUse(final string) bool {
	fd, err := lockDir(final, unix.LOCK_EX|unix.LOCK_NB)
	if err != nil {
		return true // EWOULDBLOCK: a lease; anything else: cannot tell
	}
	unix.Close(fd)
	return c.entryMounted(final)
}

// entryMounted reports whether a mounted overlay has the entry's tree as
// a lower layer, or whether that cannot be told (mountinfo unreadable).
func (c *Cache) entryMounted(final string) bool {
	mounted, err := c.mounted()
	return err != nil || mounted[filepath.Base(final)]
}

// maxLeaseTries bounds leaseEntry's retries when the entry is replaced
// while it waits.
const maxLeaseTries = 8

// leaseEntry locks the entry directory final shared and returns the
// descriptor: held until a Prepared is released, it keeps the tree from
// being replaced under whoever is about to mount it (replace takes the
// lock exclusively). It waits for a replacement under way, and locks the
// directory found at final once it has the lock, not one a replacement
// moved away meanwhile.
func leaseEntry(final string) (int, error) {
	for range maxLeaseTries {
		fd, err := lockDir(final, unix.LOCK_SH)
		if err != nil {
			return -1, fmt.Errorf("lease %s: %w", final, err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(fd, &held) == nil && unix.Stat(final, &now) == nil && held.Dev == now.Dev && held.Ino == now.Ino {
			return fd, nil
		}
		unix.Close(fd)
	}
	return -1, fmt.Errorf("lease %s: replaced %d times while waiting", final, maxLeaseTries)
}

// lockReplacer takes the replacer's lock of the older tree at final: its
// rootfs directory locked exclusively, waited for. Across processes one
// Prepare at a time decides whether to replace an older tree, and
// replaces it; the others wait, then find it current. It is not the
// entry's own lock, whose shared holders are all the tree's users (leases)
// for entryInUse and replace. It locks the rootfs found at final once it
// has the lock, not one a replacement moved away meanwhile.
func lockReplacer(final string) (func(), error) {
	rootfs := filepath.Join(final, "rootfs")
	for range maxLeaseTries {
		fd, err := lockDir(rootfs, unix.LOCK_EX)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", rootfs, err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(fd, &held) == nil && unix.Stat(rootfs, &now) == nil && held.Dev == now.Dev && held.Ino == now.Ino {
			return func() { unix.Close(fd) }, nil
		}
		unix.Close(fd)
	}
	return nil, fmt.Errorf("lock %s: replaced %d times while waiting", rootfs, maxLeaseTries)
}

// keepStale leases the older tree at final for p, used as it is for why;
// when another process replaced it meanwhile (the lease waited for it),
// the tree is current after all.
func keepStale(final string, p *Prepared, why string) (int, error) {
	lease, err := leaseEntry(final)
	if err != nil {
		return -1, err
	}
	p.Cached, p.Replaced, p.Stats = true, false, Stats{}
	if !entryCurrent(final) {
		p.Stale = why
	}
	return lease, nil
}
