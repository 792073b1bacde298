package boot

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/filekind"
	"berth/internal/regfile"
)

// One berth per state directory and per control socket: a second `berth
// boot` on the same ones would kill the first one's containers (it clears
// their root filesystems) and take its socket. The state directory is
// locked (flock on STATE/.lock, which also records the pid) for the whole
// boot, and a socket that answers is not taken over.

// lockState creates dir (mode 0700) and flocks dir/.lock. It fails,
// naming the holder, when another berth holds it. The lock lasts as long
// as the process, or until release.
func lockState(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, ".lock")
	// A regular file only: on a data partition written elsewhere, a
	// device there would be opened and written with the pid.
	fd, err := regfile.OpenLock(path)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		holder := make([]byte, 32)
		n, _ := unix.Pread(fd, holder, 0)
		unix.Close(fd)
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another berth (pid %s) is already running on state directory %s",
				strings.TrimSpace(string(holder[:max(n, 0)])), dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := unix.Ftruncate(fd, 0); err == nil {
		_, _ = unix.Pwrite(fd, pid, 0)
	}
	return func() { unix.Close(fd) }, nil
}

// checkSocketFree fails when a berth answers on the control socket path,
// or when something else than a socket is there: berth replaces a socket
// a killed berth left, never a file a mistyped --socket names.
func checkSocketFree(path string) error {
	if err := socketOrNothing(path); err != nil {
		return err
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil // nothing listens: a socket file left by a killed berth, or none
	}
	c.Close()
	return fmt.Errorf("another berth is already serving the control socket %s", path)
}

// socketOrNothing fails unless path is missing or a socket (not
// followed if a symlink).
func socketOrNothing(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("control socket: %w", err)
	case fi.Mode()&os.ModeSocket == 0:
		return fmt.Errorf("control socket %s: %s is there, not a socket: berth replaces only a socket (name another path with --socket)", path, filekind.Of(fi.Mode()))
	}
	return nil
}
