package board

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The saved time: on a board without an RTC the clock starts at 1970 on
// every boot. berth writes the time it knows to a file at intervals and at
// shutdown, and at boot moves the clock forward to it (Restore), so the
// clock never goes back across a reboot by more than one save interval.

// SavedTimeFile is the saved time's file name in its directory.
const SavedTimeFile = "clock"

// maxSavedTimeSize bounds the file: one RFC 3339 line is at most 36 bytes.
const maxSavedTimeSize = 64

// savedTimeEnd is where saved times stop being believed: berth never
// writes a later one, and one restored could never be undone without
// SNTP, so it is read as a corrupt file.
const savedTimeEnd = 4102444800 // 2100-01-01 UTC: a constant, where a time.Date variable is init code

// LoadTime reads the time saved in dir. An error wraps fs.ErrNotExist
// when none was saved; otherwise it says what is wrong with the file. The
// file is opened without following a symlink, must be a regular file of
// at most 64 bytes holding one RFC 3339 time before 2100, and is read
// without blocking (a FIFO planted there cannot hang the boot).
func LoadTime(dir string) (time.Time, error) {
	path := filepath.Join(dir, SavedTimeFile)
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return time.Time{}, fmt.Errorf("saved time %s: %w", path, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat(dfd, SavedTimeFile, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ELOOP {
			return time.Time{}, fmt.Errorf("saved time %s: a symlink: not followed", path)
		}
		return time.Time{}, fmt.Errorf("saved time %s: %w", path, &os.PathError{Op: "open", Path: path, Err: err})
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return time.Time{}, fmt.Errorf("saved time %s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSavedTimeSize+1))
	switch {
	case err != nil:
		return time.Time{}, fmt.Errorf("saved time %s: %w", path, err)
	case len(data) > maxSavedTimeSize:
		return time.Time{}, fmt.Errorf("saved time %s: more than %d bytes", path, maxSavedTimeSize)
	}
	t, err := parseSavedTime(string(data))
	if err != nil {
		return t, fmt.Errorf("saved time %s: %w", path, err)
	}
	return t, nil
}

// parseSavedTime reads the file's one line.
func parseSavedTime(s string) (time.Time, error) {
	line, ok := strings.CutSuffix(s, "\n")
	if !ok || strings.ContainsAny(line, "\n\r\x00") {
		return time.Time{}, errors.New("not one line")
	}
	t, err := time.Parse(time.RFC3339Nano, line)
	if err != nil {
		return time.Time{}, fmt.Errorf("not an RFC 3339 time: %q", line)
	}
	if t.Before(time.Unix(0, 0)) || !t.Before(time.Unix(savedTimeEnd, 0)) {
		return time.Time{}, fmt.Errorf("%s is outside 1970-2099: not a time berth saved", line)
	}
	return t.UTC(), nil
}

// SaveTime writes t to dir (created 0700 when missing) atomically: a
// temporary file is written and fsync'ed, renamed over the saved time,
// and the directory fsync'ed, all relative to the directory's fd. A power
// cut leaves the old time or the new one, never a torn file.
func SaveTime(dir string, t time.Time) error {
	path := filepath.Join(dir, SavedTimeFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save time to %s: %w", path, err)
	}
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("save time to %s: open %s: %w", path, dir, err)
	}
	defer unix.Close(dfd)
	tmp := SavedTimeFile + ".tmp"
	// A temporary file left by a power cut, or anything planted under
	// its name, goes; O_EXCL|O_NOFOLLOW then creates a fresh one.
	if err := unix.Unlinkat(dfd, tmp, 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("save time to %s: remove %s: %w", path, tmp, err)
	}
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("save time to %s: create %s: %w", path, tmp, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, tmp))
	_, err = f.WriteString(t.UTC().Format(time.RFC3339Nano) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, SavedTimeFile)
	}
	if err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("save time to %s: %w", path, err)
	}
	if err := unix.Fsync(dfd); err != nil {
		return fmt.Errorf("save time to %s: fsync %s: %w", path, dir, err)
	}
	return nil
}
