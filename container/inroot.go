package container

import (
	"errors"
	"fmt"
	"os"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Every path berth resolves inside a container's root — mount targets,
// device nodes, masked paths — goes through these helpers: one
// openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS) per lookup, which makes
// the kernel treat the root as "/" for every symlink and "..". Kernels
// older than 5.6 lack openat2; there pathrs-lite's userspace resolver
// takes over. (pathrs-lite is also correct on new kernels, but costs
// around ten system calls per lookup, which shows in start-up time.)

var errNoOpenat2 = errors.New("openat2 unavailable")

// openat2InRoot resolves path inside root; flags are O_* open flags.
func openat2InRoot(root *os.File, path string, flags int) (*os.File, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(int(root.Fd()), path, &how)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), path), nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			continue // EAGAIN: a concurrent rename; retry
		case errors.Is(err, unix.ENOSYS):
			return nil, errNoOpenat2
		}
		return nil, &os.PathError{Op: "openat2", Path: path, Err: err}
	}
}

// lookup returns an O_PATH handle to target inside the root.
func (r rootMounter) lookup(target string) (*os.File, error) {
	target = strings.TrimPrefix(target, "/")
	if target == "" {
		target = "."
	}
	h, err := openat2InRoot(r.root, target, unix.O_PATH)
	if err == errNoOpenat2 {
		return pathrs.OpenatInRoot(r.root, target)
	}
	return h, err
}

// open resolves target inside the root, creating missing directories
// (mode 0755) on the way, and returns an O_PATH handle to it.
func (r rootMounter) open(target string) (*os.File, error) {
	h, err := r.lookup(target)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		if err != nil {
			err = fmt.Errorf("resolve %s in %s: %w", target, r.path, err)
		}
		return h, err
	}
	if _, probe := openat2InRoot(r.root, ".", unix.O_PATH); probe == errNoOpenat2 {
		return pathrs.MkdirAllHandle(r.root, target, 0o755)
	}
	// Walk down, creating each missing component inside its resolved
	// parent; a component that exists is resolved again, in the root.
	parts := strings.Split(strings.Trim(target, "/"), "/")
	dir, err := r.lookup(".")
	if err != nil {
		return nil, err
	}
	for i, p := range parts {
		if p == "" || p == "." {
			continue
		}
		sofar := strings.Join(parts[:i+1], "/")
		next, err := r.lookup(sofar)
		if errors.Is(err, os.ErrNotExist) {
			if err := unix.Mkdirat(int(dir.Fd()), p, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				dir.Close()
				return nil, fmt.Errorf("mkdir %s in %s: %w", sofar, r.path, err)
			}
			next, err = r.lookup(sofar)
		}
		dir.Close()
		if err != nil {
			return nil, fmt.Errorf("resolve %s in %s: %w", sofar, r.path, err)
		}
		dir = next
	}
	return dir, nil
}

// openDir opens a directory inside the root for *at system calls.
func (r rootMounter) openDir(target string) (*os.File, error) {
	h, err := r.lookup(target)
	if err != nil {
		return nil, fmt.Errorf("open %s in %s: %w", target, r.path, err)
	}
	defer h.Close()
	return reopenDir(h)
}

// reopenDir turns an O_PATH handle of a directory into a readable fd.
func reopenDir(h *os.File) (*os.File, error) {
	fd, err := unix.Openat(int(h.Fd()), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "reopen", Path: h.Name(), Err: err}
	}
	return os.NewFile(uintptr(fd), h.Name()), nil
}
