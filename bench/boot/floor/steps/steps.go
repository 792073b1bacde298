// Package steps is the floors' steps (bench/boot/floor and
// bench/boot/floor/isolated): what a PID 1 does on the path to the demo's
// first container output, each step in its simplest form, with the same
// Go runtime and zstd decoder as berth, logged as berth logs.
package steps

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// The demo's first container (demo/berth.toml).
const (
	Image  = "/images/demo.tar.zst"
	Name   = "web"
	Memory = 32 << 20
	Pids   = 16
)

// Command and Env are the web container's command and environment
// (steps_test.go checks them, and the constants, against the demo
// config).
var (
	Command = []string{"/bin/sh", "/demo/show.sh"}
	Env     = []string{"ROLE=web server"}
)

// bootGCPercent is the collector's setting berth boots with
// (boot/gc.go): the unpack's garbage costs no collection on the way.
const bootGCPercent = 800

// Run logs the floor's start, runs first (if not nil), mounts the early
// filesystems, runs the floor's own steps and powers off; PID 1 never
// exits. Like berth's first line, the start comes before any mount, so
// that the floor's figure counts its mounts as berth's counts its early
// mounts phase. The collector is set as berth sets it for its boot.
func Run(first, steps func() error) {
	Logf("floor: started")
	debug.SetGCPercent(bootGCPercent)
	if first != nil {
		if err := first(); err != nil {
			Fail(err)
		}
	}
	if err := mountEarly(); err != nil {
		Fail(err)
	}
	Logf("floor: step mounts")
	if err := steps(); err != nil {
		Fail(err)
	}
	Logf("floor: power off")
	_ = unix.IoctlSetInt(1, unix.TCSBRK, 1) // tcdrain, as hello does
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// ImageAndOverlay loads overlay.ko, unpacks the image into a tmpfs
// and mounts the container's overlay of it, logging each step, and
// returns the overlay's mount point.
func ImageAndOverlay() (string, error) {
	if err := loadOverlay(); err != nil {
		return "", err
	}
	Logf("floor: step overlay module")
	lower := "/run/image"
	if err := unpack(Image, lower); err != nil {
		return "", fmt.Errorf("unpack %s: %w", Image, err)
	}
	Logf("floor: step unpack")
	return mountOverlay(lower, "/run/"+Name)
}

// Relay logs each line read from out as the container's output, as
// berth does, until its end.
func Relay(out io.Reader) {
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		Logf("%s | %s", Name, lines.Text())
	}
}

// Logf prints a line stamped with the time since boot, as berth does.
func Logf(format string, args ...any) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	fmt.Printf("[%12.6f] %s\n", float64(ts.Sec)+float64(ts.Nsec)/1e9, fmt.Sprintf(format, args...))
}

// Fail logs err and powers off: PID 1 must not exit.
func Fail(err error) {
	Logf("floor: %v", err)
	for {
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		_ = unix.Pause()
	}
}

// mountEarly mounts what the steps need: /proc, /sys, /dev, cgroup2 and
// a tmpfs for the unpacked image and the container's upper layer.
func mountEarly() error {
	for _, m := range []struct{ fstype, target string }{
		{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}, {"cgroup2", "/sys/fs/cgroup"}, {"tmpfs", "/run"},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fstype, m.target, m.fstype, 0, ""); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

// loadOverlay loads overlay.ko from the initramfs's modules.
func loadOverlay() error {
	var path string
	_ = filepath.WalkDir("/lib/modules", func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), "overlay.ko") {
			path = p
			return filepath.SkipAll
		}
		return nil
	})
	if path == "" {
		return errors.New("no overlay.ko under /lib/modules")
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
		return fmt.Errorf("load %s: %w", path, err)
	}
	return nil
}

// unpack writes the entries of a zstd-compressed tar under dir: the
// demo image's directories, files, symlinks and hard links. It trusts
// the image, the bench's own: unlike berth's unpack it does not guard
// against an entry written through a symlink of an earlier one.
func unpack(src, dir string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return err
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, h.FileInfo().Mode().Perm())
		case tar.TypeReg:
			err = writeFile(p, tr, h.FileInfo().Mode().Perm())
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		case tar.TypeLink:
			err = os.Link(filepath.Join(dir, filepath.Clean("/"+h.Linkname)), p)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
}

func writeFile(p string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err = io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// mountOverlay mounts an overlay of lower with its upper and work
// directories under dir, and returns where.
func mountOverlay(lower, dir string) (string, error) {
	upper, work, merged := dir+"/upper", dir+"/work", dir+"/merged"
	for _, d := range []string{upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return "", fmt.Errorf("mount overlay on %s: %w", merged, err)
	}
	return merged, nil
}
