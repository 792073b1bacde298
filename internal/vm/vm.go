// Package vm boots berth in QEMU the way an appliance boots: a Debian
// kernel and an initramfs (newc cpio, written with u-root's pkg/cpio)
// holding berth as /init, its config and its images. make demo, the QEMU
// tests and the benchmarks share it. It drives QEMU through
// github.com/hugelgupf/vmtest's qemu package, always under TCG.
package vm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hugelgupf/vmtest/qemu"
	"github.com/u-root/u-root/pkg/cpio"
)

// Arch is how QEMU boots one architecture.
type Arch struct {
	// GOARCH names the architecture as Go and Debian (mostly) do.
	GOARCH string
	// QEMU is the system emulator.
	QEMU string
	// Machine holds the machine and CPU arguments.
	Machine []string
	// Console is the kernel's serial console device.
	Console string
}

// Arches are the architectures berth boots in QEMU, each on a Debian
// kernel: linux-image-amd64, -arm64 and (armhf) -armmp-lpae of Debian 12,
// linux-image-riscv64 of Debian 13 (OpenSBI from QEMU's own firmware).
var Arches = map[string]Arch{
	"amd64":   {GOARCH: "amd64", QEMU: "qemu-system-x86_64", Machine: []string{"-M", "pc"}, Console: "ttyS0"},
	"arm64":   {GOARCH: "arm64", QEMU: "qemu-system-aarch64", Machine: []string{"-M", "virt", "-cpu", "max,pauth-impdef=on"}, Console: "ttyAMA0"},
	"arm":     {GOARCH: "arm", QEMU: "qemu-system-arm", Machine: []string{"-M", "virt", "-cpu", "cortex-a15"}, Console: "ttyAMA0"},
	"riscv64": {GOARCH: "riscv64", QEMU: "qemu-system-riscv64", Machine: []string{"-M", "virt", "-bios", "default"}, Console: "ttyS0"},
}

// ArchNames lists Arches in a fixed order: those TCG runs fastest first.
var ArchNames = []string{"amd64", "arm64", "arm", "riscv64"}

// Board is a real board that QEMU emulates, booted with Debian's kernel
// for its architecture (Arch.GOARCH) and the device tree that kernel's
// package ships for it.
type Board struct {
	Arch
	// DTB is the device tree, relative to the package's
	// /usr/lib/linux-image-RELEASE.
	DTB string
	// MemoryMB and CPUs are the board's, fixed by QEMU's machine.
	MemoryMB, CPUs int
}

// Boards are the boards berth boots in QEMU. raspi3b's console is the mini
// UART (QEMU's second serial port): the device tree makes it serial1,
// ttyS1, and gives the PL011 (ttyAMA0) to Bluetooth.
var Boards = map[string]Board{
	"raspi3b": {
		Arch: Arch{GOARCH: "arm64", QEMU: "qemu-system-aarch64",
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

// Kernel returns the Debian kernel for arch fetched by `make fetch`:
// boot/vmlinuz-*, or boot/vmlinux-* as Debian names riscv64's (an Image,
// which QEMU loads as it is).
func Kernel(repo, arch string) (string, error) {
	pattern := filepath.Join(CacheDir(repo), "deb", arch, "linux-image", "boot", "vmlinu[xz]-*")
	m, _ := filepath.Glob(pattern)
	if len(m) == 0 {
		return "", fmt.Errorf("no Debian kernel for %s (%s): run 'make fetch ARCH=%s'", arch, pattern, arch)
	}
	sort.Strings(m)
	return m[len(m)-1], nil
}

// Initramfs is a newc cpio archive under construction.
type Initramfs struct {
	records []cpio.Record
}

// NewInitramfs starts an initramfs with the directories berth mounts on
// and /dev/console, which the kernel opens as init's stdio.
func NewInitramfs() *Initramfs {
	i := &Initramfs{}
	for _, d := range []string{"dev", "proc", "sys", "etc", "run", "tmp", "var", "images"} {
		i.records = append(i.records, cpio.Directory(d, 0o755))
	}
	i.records = append(i.records, cpio.CharDev("dev/console", 0o600, 5, 1))
	return i
}

// AddFile adds a file with the given content and permissions.
func (i *Initramfs) AddFile(name string, content []byte, perm uint64) {
	i.records = append(i.records, cpio.StaticFile(strings.TrimPrefix(name, "/"), string(content), perm))
}

// AddHostFile copies a file of the host into the initramfs at name.
func (i *Initramfs) AddHostFile(name, hostPath string, perm uint64) error {
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	i.AddFile(name, data, perm)
	return nil
}

// Write writes the archive to path, creating parent directories of the
// added files.
func (i *Initramfs) Write(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	w := cpio.Newc.Writer(f)
	if err := cpio.WriteRecordsAndDirs(w, i.records); err != nil {
		f.Close()
		return fmt.Errorf("initramfs %s: %w", path, err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		f.Close()
		return fmt.Errorf("initramfs %s: %w", path, err)
	}
	return f.Close()
}

// Config is one QEMU boot.
type Config struct {
	Arch      string
	Kernel    string
	Initramfs string
	// Append is added to the kernel command line.
	Append []string
	// MemoryMB is the guest's memory (default 256).
	MemoryMB int
	// Timeout kills a guest that has not powered off by then: a hang
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
}

// UserNet is QEMU's user networking (-netdev user) as berth's tests use
// it: the guest is 10.0.2.15/24 by DHCP and the host's loopback is
// 10.0.2.2. QEMU refuses the host's address as DNS server ("DNS must be
// different from host"), so the lease names DNS (default QEMU's own
// 10.0.2.3, which forwards queries to the host's resolver): a test must
// resolve no name, so that no query leaves this machine.
type UserNet struct {
	// HostFwd forwards host ports to the guest: "tcp:127.0.0.1:18080-:8080".
	HostFwd []string
	// DNS is the address QEMU's DHCP server hands out as the DNS server.
	DNS string
	// MAC is the NIC's address (default QEMU's, 52:54:00:12:34:56).
	MAC string
	// Hostname is the host name QEMU's DHCP server hands out (option
	// 12); none by default.
	Hostname string
}

// args are the QEMU arguments of the user network.
func (n *UserNet) args() []string {
	if n == nil {
		return []string{"-nic", "none"}
	}
	dns := n.DNS
	if dns == "" {
		dns = "10.0.2.3"
	}
	netdev := "user,id=n0,dns=" + dns
	if n.Hostname != "" {
		netdev += ",hostname=" + n.Hostname
	}
	for _, f := range n.HostFwd {
		netdev += ",hostfwd=" + f
	}
	dev := "virtio-net-pci,netdev=n0"
	if n.MAC != "" {
		dev += ",mac=" + n.MAC
	}
	return []string{"-netdev", netdev, "-device", dev}
}

// Options turns c into vmtest qemu options. Never KVM: /dev/kvm exists on
// the build machines but hangs, so guests run under TCG.
func (c Config) Options() []qemu.Fn {
	a, mem, cpus := Arches[c.Arch], c.MemoryMB, 1
	if b, ok := Boards[c.Board]; ok {
		a, mem, cpus = b.Arch, b.MemoryMB, b.CPUs
	}
	if mem == 0 {
		mem = 256
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	args := append([]string{a.QEMU}, a.Machine...)
	args = append(args, "-accel", "tcg", "-m", fmt.Sprint(mem), "-smp", fmt.Sprint(cpus), "-no-reboot", "-display", "none")
	if c.DTB != "" {
		args = append(args, "-dtb", c.DTB)
	}
	args = append(args, c.Net.args()...)
	args = append(args, c.ExtraQEMU...)
	cmdline := append([]string{"console=" + a.Console, "panic=-1", "quiet"}, c.Append...)
	return []qemu.Fn{
		qemu.WithQEMUCommand(strings.Join(args, " ")),
		qemu.WithKernel(c.Kernel),
		qemu.WithInitramfs(c.Initramfs),
		qemu.WithAppendKernel(cmdline...),
		qemu.WithVMTimeout(timeout),
	}
}

// QEMUArch maps a GOARCH to vmtest's architecture name.
func QEMUArch(arch string) qemu.Arch { return qemu.Arch(arch) }

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
