package image

import (
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
// cacheFormat or a later one.
func entryCurrent(dir string) bool {
	f, err := os.Open(filepath.Join(dir, formatFile))
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, maxFormatFile)
	n, _ := f.Read(b)
	v, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
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

// replace puts a finished staging tree in the place of the entry final,
// which an older berth made, in one rename(2) that exchanges the two
// (RENAME_EXCHANGE), and removes the old tree. Replacements of one entry
// are serialised across processes by a lock on the entry's directory: the
// one that finds final current once it holds the lock lost the race
// (errRaced). The old tree is locked until it is removed, and after a
// crash it sits in a staging directory, removed as stale by OpenCache.
func (c *Cache) replace(stage *staging, final string) error {
	if err := stage.sync(); err != nil {
		return err
	}
	reached("synced")
	fd, err := lockDir(final, unix.LOCK_EX)
	if err != nil {
		return fmt.Errorf("lock %s: %w", final, err)
	}
	defer unix.Close(fd)
	if entryCurrent(final) {
		return errRaced
	}
	if err := unix.Renameat2(unix.AT_FDCWD, stage.path, unix.AT_FDCWD, final, unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("exchange %s and %s: %w", stage.path, final, err)
	}
	reached("renamed")
	if err := syncDir(c.Root); err != nil {
		return fmt.Errorf("fsync %s: %w", c.Root, err)
	}
	// stage.path is the old tree now, locked by fd; the new one, at final,
	// needs no lock of its own any more.
	// What cannot be removed now is removed as stale once fd is closed.
	stage.release()
	_ = removeTree(stage.path)
	return nil
}
