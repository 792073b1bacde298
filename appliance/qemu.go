package appliance

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// arches are the architectures berth boots in QEMU, each on a Debian
// kernel: linux-image-amd64, -arm64 and (armhf) -armmp-lpae of Debian 12,
// linux-image-riscv64 of Debian 13 (OpenSBI from QEMU's own firmware).
// An array, in ArchNames' order, is data; a map would be built by init
// code in every berth process.
var arches = [...]Arch{
	{GOARCH: "amd64", QEMU: "qemu-system-x86_64", Machine: []string{"-M", "pc"}, Console: "ttyS0"},
	{GOARCH: "arm64", QEMU: "qemu-system-aarch64", Machine: []string{"-M", "virt", "-cpu", "max,pauth-impdef=on"}, Console: "ttyAMA0"},
	{GOARCH: "arm", QEMU: "qemu-system-arm", Machine: []string{"-M", "virt", "-cpu", "cortex-a15"}, Console: "ttyAMA0"},
	{GOARCH: "riscv64", QEMU: "qemu-system-riscv64", Machine: []string{"-M", "virt", "-bios", "default"}, Console: "ttyS0"},
}

// ArchNames lists the architectures in a fixed order: those TCG runs
// fastest first.
var ArchNames = []string{"amd64", "arm64", "arm", "riscv64"}

// LookupArch returns the architecture named name (a GOARCH of
// ArchNames), false for any other.
func LookupArch(name string) (Arch, bool) {
	for _, a := range arches {
		if a.GOARCH == name {
			return a, true
		}
	}
	return Arch{}, false
}

// UserNet is QEMU's user networking (-netdev user): the guest gets
// 10.0.2.15/24 by DHCP, and the host's loopback is 10.0.2.2. QEMU refuses
// the host's address as DNS server ("DNS must be different from host"),
// so the lease names DNS (default QEMU's own 10.0.2.3, which forwards
// queries to the host's resolver).
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

// Forward is the HostFwd of `-p HOSTPORT:GUESTPORT`: TCP from the host's
// loopback only, to the guest's port.
func Forward(p string) (string, error) {
	h, g, ok := strings.Cut(p, ":")
	hp, herr := strconv.ParseUint(h, 10, 16)
	gp, gerr := strconv.ParseUint(g, 10, 16)
	if !ok || herr != nil || gerr != nil || hp == 0 || gp == 0 {
		return "", fmt.Errorf("%q: want HOSTPORT:GUESTPORT, ports 1-65535", p)
	}
	return fmt.Sprintf("tcp:127.0.0.1:%d-:%d", hp, gp), nil
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

// QEMU is one boot of an appliance in QEMU: always under TCG (KVM hangs
// on the build machines), with -no-reboot so that a reboot ends QEMU, and
// panic=-1 so that a kernel panic is a reboot.
type QEMU struct {
	// Arch is one of ArchNames.
	Arch string
	// Machine, when set, is booted instead of Arch's (a board QEMU
	// emulates); its own Machine arguments may route the serial ports.
	Machine *Arch
	// Kernel, Initramfs and DTB (optional) are the files QEMU loads.
	Kernel, Initramfs, DTB string
	// Append is added to the kernel command line.
	Append []string
	// MemoryMB is the guest's memory (default 256); CPUs its CPUs
	// (default 1).
	MemoryMB, CPUs int
	// Net, when set, gives the guest a virtio NIC on QEMU's user network;
	// otherwise the guest has no NIC at all.
	Net *UserNet
	// Disks are files the guest sees as virtio disks, raw, in order
	// (/dev/vda, /dev/vdb, ...).
	Disks []string
	// Extra is appended to QEMU's arguments (devices, a watchdog).
	Extra []string
}

// Args is the QEMU command line: the emulator and its arguments. The
// console is the serial port on QEMU's stdio, multiplexed with its
// monitor (Ctrl-A C; Ctrl-A X quits).
func (q QEMU) Args() ([]string, error) {
	a, ok := LookupArch(q.Arch)
	if q.Machine != nil {
		a, ok = *q.Machine, true
	}
	if !ok {
		return nil, fmt.Errorf("architecture %q: want one of %s", q.Arch, strings.Join(ArchNames, ", "))
	}
	mem, cpus := q.MemoryMB, q.CPUs
	if mem == 0 {
		mem = 256
	}
	if cpus == 0 {
		cpus = 1
	}
	args := append([]string{a.QEMU}, a.Machine...)
	if !slices.Contains(a.Machine, "-serial") {
		args = append(args, "-serial", "mon:stdio")
	}
	args = append(args, "-accel", "tcg", "-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-no-reboot", "-display", "none", "-kernel", q.Kernel, "-initrd", q.Initramfs)
	if q.DTB != "" {
		args = append(args, "-dtb", q.DTB)
	}
	args = append(args, q.Net.args()...)
	for _, d := range q.Disks {
		// QEMU reads ",," in an option's value as one comma.
		args = append(args, "-drive", "file="+strings.ReplaceAll(d, ",", ",,")+",format=raw,if=virtio")
	}
	args = append(args, q.Extra...)
	cmdline := append([]string{"console=" + a.Console, "panic=-1", "quiet"}, q.Append...)
	return append(args, "-append", strings.Join(cmdline, " ")), nil
}
