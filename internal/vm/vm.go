// Package vm is how berth's QEMU tests and the boot benchmark make and
// boot their appliances: berth and Go programs built for a guest's
// architecture, and initramfs builds and boots through package appliance
// — the code of berth initramfs and berth vm — so that what users run is
// what the tests run. It adds what only tests need: the boards QEMU
// emulates, a console to read, and an end to a boot that cannot power
// itself off.
package vm

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"berth/appliance"
	"berth/internal/testutil"
)

// Board is a real board that QEMU emulates, booted with Debian's kernel
// for its architecture (Arch.GOARCH) and the device tree that kernel's
// package ships for it.
type Board struct {
	appliance.Arch
	// DTB is the device tree, relative to the package's
	// /usr/lib/linux-image-RELEASE.
	DTB string
	// MemoryMB and CPUs are the board's, fixed by QEMU's machine.
	MemoryMB, CPUs int
}

// BerthCLIMounts are the [[container.mount]]s of a guest container that
// runs berth's CLI against PID 1: the control socket, and berth itself
// (the initramfs's /init) as /bin/berth.
const BerthCLIMounts = `[[container.mount]]
source = "/run/berth.sock"
target = "/run/berth.sock"
[[container.mount]]
source = "/init"
target = "/bin/berth"
readonly = true
`

// Boards are the boards berth boots in QEMU. raspi3b's console is the mini
// UART (QEMU's second serial port): the device tree makes it serial1,
// ttyS1, and gives the PL011 (ttyAMA0) to Bluetooth.
var Boards = map[string]Board{
	"raspi3b": {
		Arch: appliance.Arch{GOARCH: "arm64", QEMU: "qemu-system-aarch64",
			Machine: []string{"-M", "raspi3b", "-serial", "null", "-serial", "mon:stdio"}, Console: "ttyS1"},
		DTB: "broadcom/bcm2837-rpi-3-b.dtb", MemoryMB: 1024, CPUs: 4,
	},
}

// DeviceTree returns a device tree (e.g. "broadcom/bcm2837-rpi-3-b.dtb")
// from the Debian kernel package fetched for arch.
func DeviceTree(repo, arch, name string) (string, error) {
	pattern := filepath.Join(CacheDir(repo), "deb", arch, "linux-image", "usr", "lib", "linux-image-*", name)
	m, _ := filepath.Glob(pattern)
	if len(m) == 0 {
		return "", fmt.Errorf("no device tree %s (%s): run 'make fetch ARCH=%s'", name, pattern, arch)
	}
	sort.Strings(m)
	return m[len(m)-1], nil
}

// CacheDir is where the Makefile puts fetched Debian packages.
func CacheDir(repo string) string { return filepath.Join(repo, ".cache") }

// UserNet is QEMU's user network, as berth vm gives it.
type UserNet = appliance.UserNet

// Config is one QEMU boot.
type Config struct {
	Arch      string
	Kernel    string
	Initramfs string
	// Append is added to the kernel command line.
	Append []string
	// MemoryMB is the guest's memory (default 256).
	MemoryMB int
	// Timeout kills a guest that has not shut down by then: a hang
	// guard, not a performance check (default 3 minutes).
	Timeout time.Duration
	// ExtraQEMU is appended to QEMU's arguments (devices, watchdog).
	ExtraQEMU []string
	// Net, when set, gives the guest a virtio NIC on QEMU's user network;
	// otherwise the guest has no NIC at all.
	Net *UserNet
	// Board, when set, boots this key of Boards instead of Arch's QEMU
	// machine (Arch is then the board's GOARCH), with its device tree DTB.
	Board string
	DTB   string
	// Kill, when closed, kills QEMU (SIGKILL): the machine loses power.
	Kill <-chan struct{}
}

// QEMU is the boot as berth vm describes one.
func (c Config) QEMU() appliance.QEMU {
	q := appliance.QEMU{Arch: c.Arch, Kernel: c.Kernel, Initramfs: c.Initramfs, DTB: c.DTB, Append: c.Append,
		MemoryMB: c.MemoryMB, Net: c.Net, Extra: c.ExtraQEMU}
	if b, ok := Boards[c.Board]; ok {
		q.Machine, q.MemoryMB, q.CPUs = &b.Arch, b.MemoryMB, b.CPUs
	}
	return q
}

// Boot boots c as berth vm does and returns the console once QEMU has
// exited (QEMU's own messages in it), with how the guest ended; console,
// when set, also gets the console as it arrives. When until is set, QEMU is killed once the console shows
// it: for a machine that cannot power itself off. The error is QEMU's,
// the timeout's, or a *LockupError: the guest's kernel reported a CPU
// stuck in the kernel for a minute, and QEMU was killed then rather than
// at the timeout.
func (c Config) Boot(console io.Writer, until string) (string, appliance.Exit, error) {
	args, err := c.QEMU().Args()
	if err != nil {
		return "", appliance.Exit{}, err
	}
	out := &testutil.SyncBuffer{}
	var w io.Writer = out
	if console != nil {
		w = io.MultiWriter(out, console)
	}
	v, err := appliance.Start(args, nil, w, out)
	if err != nil {
		return "", appliance.Exit{}, err
	}
	stop := make(chan struct{})
	defer close(stop)
	var lockup atomic.Pointer[LockupError]
	go func() {
		for {
			s := out.String()
			if until != "" && strings.Contains(s, until) {
				_ = v.Kill()
				return
			}
			if l := findLockup(s); l != nil {
				lockup.Store(l)
				_ = v.Kill()
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	if c.Kill != nil {
		exited := make(chan struct{})
		defer close(exited)
		go func() {
			select {
			case <-c.Kill:
				_ = v.Kill()
			case <-exited:
			}
		}()
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	exit, err := v.Wait(timeout)
	switch {
	case until != "" && strings.Contains(out.String(), until):
		err = nil
	case lockup.Load() != nil:
		err = lockup.Load()
	case err == nil && exit.TimedOut:
		err = fmt.Errorf("QEMU killed after %s", timeout)
	}
	return out.String(), exit, err
}

// Initramfs builds spec as berth initramfs does — the modules from the
// kernel's own package when spec names no directory — and writes it to
// out.
func Initramfs(spec appliance.Spec, kernel, out string) error {
	if spec.ModulesDir == "" {
		var err error
		if spec.ModulesDir, err = appliance.KernelModules(kernel); err != nil {
			return err
		}
	}
	b, err := appliance.Build(spec)
	if err != nil {
		return err
	}
	return b.Write(out)
}

// BuildBerth cross-compiles berth for arch into dir and returns its path:
// static, stripped, CGO_ENABLED=0, as the Makefile builds it.
func BuildBerth(repo, arch, dir string) (string, error) {
	out := filepath.Join(dir, "berth-linux-"+arch)
	return out, BuildGo(repo, ".", arch, out)
}

// BuildGo cross-compiles the Go package pkg (relative to repo) for arch,
// static and stripped, to out.
func BuildGo(repo, pkg, arch, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if arch == "arm" {
		cmd.Env = append(cmd.Env, "GOARM=7")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s for %s: %v\n%s", pkg, arch, err, b)
	}
	return nil
}
