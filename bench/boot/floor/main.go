// Command floor is the least a PID 1 must do, under QEMU's TCG, before
// the demo's first container prints: the boot benchmark's floor for
// issue 11's target (berth start -> first container output).
//
// It boots the demo initramfs in berth's place and does only the steps
// on the path to the first container's first line, each in its simplest
// form, with the same Go runtime and zstd decoder as berth: the
// filesystems a container needs, the overlay module, the unpack of the
// first container's image into a tmpfs, its overlay, its cgroup with the
// demo's limits, and a start in new namespaces (chroot, not pivot_root;
// no seccomp filter, capabilities, devices, /proc or hostname in the
// container). It logs its start and the container's first line as berth
// does ("floor: started", "floor: step NAME", "web | ...", which
// bench/boot/console.go reads), then powers off.
//
// Anything berth does on that path that the floor does not is berth's
// own cost; what the floor takes, any init takes on this machine.
package main

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// The demo's first container (demo/berth.toml).
const (
	image  = "/images/demo.tar.zst"
	name   = "web"
	memory = "33554432"
	pids   = "16"
)

var command = []string{"/bin/sh", "/demo/show.sh"}

func main() {
	if err := mountEarly(); err != nil {
		fail(err)
	}
	logf("floor: started")
	if err := run(); err != nil {
		fail(err)
	}
	logf("floor: power off")
	_ = unix.IoctlSetInt(1, unix.TCSBRK, 1) // tcdrain, as hello does
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

// logf prints a line stamped with the time since boot, as berth does.
func logf(format string, args ...any) {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	fmt.Printf("[%12.6f] %s\n", float64(ts.Sec)+float64(ts.Nsec)/1e9, fmt.Sprintf(format, args...))
}

// fail logs err and powers off: PID 1 must not exit.
func fail(err error) {
	logf("floor: %v", err)
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

func run() error {
	if err := loadOverlay(); err != nil {
		return err
	}
	logf("floor: step overlay module")
	lower := "/run/image"
	if err := unpack(image, lower); err != nil {
		return fmt.Errorf("unpack %s: %w", image, err)
	}
	logf("floor: step unpack")
	merged, err := mountOverlay(lower, "/run/"+name)
	if err != nil {
		return err
	}
	cg, err := makeCgroup(name)
	if err != nil {
		return err
	}
	defer cg.Close()
	logf("floor: step overlay and cgroup")
	return start(merged, cg)
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

// makeCgroup makes the container's cgroup with the demo's limits and
// returns it open, for CLONE_INTO_CGROUP.
func makeCgroup(name string) (*os.File, error) {
	root := "/sys/fs/cgroup"
	if err := os.WriteFile(root+"/cgroup.subtree_control", []byte("+memory +pids"), 0); err != nil {
		return nil, fmt.Errorf("enable memory and pids: %w", err)
	}
	dir := root + "/" + name
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	for file, v := range map[string]string{"memory.max": memory, "pids.max": pids} {
		if err := os.WriteFile(dir+"/"+file, []byte(v), 0); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, file, err)
		}
	}
	return os.Open(dir)
}

// start runs the container's command in new namespaces, chrooted into
// root and in cgroup cg, logs its first line as berth does, and waits
// for it.
func start(root string, cg *os.File) error {
	out, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := &exec.Cmd{
		Path:   command[0],
		Args:   command,
		Env:    []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "ROLE=web server"},
		Stdout: w,
		Stderr: w,
		SysProcAttr: &syscall.SysProcAttr{
			Chroot: root,
			Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS |
				syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
			UseCgroupFD: true,
			CgroupFD:    int(cg.Fd()),
		},
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", command[0], err)
	}
	logf("floor: step started")
	w.Close()
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		logf("%s | %s", name, lines.Text())
	}
	return cmd.Wait()
}
