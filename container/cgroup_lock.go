package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A container's cgroup is berth/NAME on the whole host, so two berths
// (two berth boot on a development host, or berth run --name beside
// one) could pick the same name; the one that came second took the
// other's cgroup for a leftover of a killed berth, killed its processes
// and removed it. Each berth now holds a lock per named container while
// its cgroup lives: a file of CgroupLockDir, flock'ed. The lock of a
// berth that was killed went with it, so its leftovers are still taken
// over. berth run's own names (run-PID) are unique and not locked.

// CgroupLockDir holds the cgroup locks (tests move it).
var CgroupLockDir = "/run/berth/cgroups"

// errCgroupInUse is why a cgroup another berth holds is not taken over.
var errCgroupInUse = errors.New("its cgroup is in use by another running berth")

// lockCgroup takes the lock of cgroup name: nil, nil when it cannot be
// kept (no writable /run: the cgroup is made unlocked, as before);
// errCgroupInUse when another berth holds it.
func lockCgroup(name string) (*os.File, error) {
	if _, isRun := runPid(name); isRun {
		return nil, nil
	}
	if err := os.MkdirAll(CgroupLockDir, 0o700); err != nil {
		return nil, nil
	}
	path := filepath.Join(CgroupLockDir, name)
	for range 10 {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, nil
		}
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			unix.Close(fd)
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%w (%s is locked)", errCgroupInUse, path)
			}
			return nil, nil
		}
		// The lock is the file's at path: one unlocked and removed
		// meanwhile (unlockCgroup) is no lock; try again.
		var held, now unix.Stat_t
		if unix.Fstat(fd, &held) == nil && unix.Lstat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return os.NewFile(uintptr(fd), path), nil
		}
		unix.Close(fd)
	}
	return nil, nil
}

// unlockCgroup removes the lock's file, then lets it go.
func unlockCgroup(f *os.File) {
	if f == nil {
		return
	}
	_ = unix.Unlink(f.Name())
	f.Close()
}
