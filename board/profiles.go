package board

import (
	"fmt"
	"slices"
	"strings"
)

// Profile is what berth knows about a kind of board.
type Profile struct {
	Name string `json:"name"`
	// Console is the kernel's serial console device on this board.
	Console string `json:"console"`
	// Watchdog is the watchdog device to arm, "" for none.
	Watchdog string `json:"watchdog,omitempty"`
	// Modules are loaded at boot, in order, when the kernel has them as
	// modules (built-in ones are skipped).
	Modules []string `json:"modules,omitempty"`
	// NICs are the drivers of the board's network controllers that berth
	// finds by modalias (PCI, virtio, device-tree ethernet nodes): an
	// initramfs carries them when its config configures an interface.
	NICs []string `json:"nic_drivers,omitempty"`
	// Disks are the drivers on the way to its disks (controllers, SD
	// cards, USB mass storage) that berth finds by modalias while it waits
	// for the data partition: an initramfs carries them when its config
	// has [storage].
	Disks []string `json:"disk_drivers,omitempty"`
	// Notes are shown by `berth board`.
	Notes string `json:"notes,omitempty"`

	// match selects the profile: a compatible string prefix, a model
	// substring, or the architecture for the generic profiles; arches
	// also narrow the other two, and say which kernels the profile is for.
	compatible, model string
	arches            []string
}

// ForArch reports whether the profile is for machines of arch (a GOARCH).
func (p Profile) ForArch(arch string) bool {
	return len(p.arches) == 0 || slices.Contains(p.arches, arch)
}

// Rule says which boards the profile is picked for.
func (p Profile) Rule() string {
	var rule []string
	switch {
	case p.compatible != "":
		rule = append(rule, "device tree compatible "+p.compatible+"*")
	case p.model != "":
		rule = append(rule, fmt.Sprintf("model contains %q", p.model))
	}
	if len(p.arches) > 0 {
		rule = append(rule, "arch "+strings.Join(p.arches, " or "))
	}
	if len(rule) == 0 {
		return "any board"
	}
	return strings.Join(rule, ", ")
}

// ContainerModules are what berth's containers use: overlay for writable
// layers on shared images. A profile's other modules (its watchdog's
// driver) are not needed before the containers start.
var ContainerModules = containerModules[:]

// containerModules holds ContainerModules: the profiles slice it, which
// Go initialises as data (copying a slice variable would be init code).
var containerModules = [...]string{"overlay"}

// piModules are a Raspberry Pi's: its watchdog, which is also what powers
// it off and reboots it, then ContainerModules. The profiles' lists are
// written out, not appended: a table of literals is data, where one
// append made the whole table code that runs at every start (4.8 KiB;
// TestProfileLists checks they hold what they name).
var piModules = [...]string{"bcm2835_wdt", "overlay"}

// piArches are the architectures of Debian's kernels for the Raspberry
// Pis: arm64, and armhf's armmp for the 3 and the Zero 2 W in 32-bit mode.
var piArches = [...]string{"arm64", "arm"}

// virtioNICs drive QEMU's virtio-net-pci, and virtioDisks its
// virtio-blk-pci (the virtio-mmio transport is built into Debian's
// kernels).
var (
	virtioNICs  = [...]string{"virtio_pci", "virtio_net"}
	virtioDisks = [...]string{"virtio_pci", "virtio_blk"}
)

// piDisks are a Raspberry Pi's: its SD card (and eMMC) host, USB mass
// storage.
var piDisks = [...]string{"sdhci_iproc", "mmc_block", "usb_storage", "sd_mod"}

// pcDisks are a PC's: SATA, NVMe, USB mass storage, then virtioDisks.
var pcDisks = [...]string{"ahci", "nvme", "sd_mod", "xhci_pci", "usb_storage", "virtio_pci", "virtio_blk"}

// piNotes are shown for every Raspberry Pi.
const piNotes = "Raspberry Pi kernels leave the memory cgroup off unless the command line has cgroup_enable=memory, " +
	"and Raspberry Pi firmware adds cgroup_disable=memory to it"

// Profiles are the boards berth knows, most specific first. The consoles
// of the Raspberry Pis are those of Debian's kernel and device trees,
// which name each UART after its serial alias: the mini UART (serial1) is
// ttyS1 on a 3, 4, 400 and Zero 2 W, whose PL011 (ttyAMA0) drives
// Bluetooth; Raspberry Pi OS's kernel calls the mini UART ttyS0.
var Profiles = []Profile{
	{Name: "raspberrypi-5", compatible: "raspberrypi,5", arches: piArches[:], Console: "ttyAMA10", Watchdog: "/dev/watchdog",
		Modules: piModules[:], Disks: piDisks[:], Notes: piNotes + "; Debian 12's kernel does not support the Pi 5: use Raspberry Pi OS's"},
	{Name: "raspberrypi-4", compatible: "raspberrypi,4", arches: piArches[:], Console: "ttyS1", Watchdog: "/dev/watchdog",
		Modules: piModules[:], Disks: piDisks[:], NICs: []string{"genet"}, Notes: piNotes},
	{Name: "raspberrypi-cm3", compatible: "raspberrypi,3-compute-module", arches: piArches[:], Console: "ttyAMA0", Watchdog: "/dev/watchdog",
		Modules: piModules[:], Disks: piDisks[:], Notes: piNotes + "; the Compute Module 3 has no Bluetooth: its console is the PL011"},
	{Name: "raspberrypi-3", compatible: "raspberrypi,3", arches: piArches[:], Console: "ttyS1", Watchdog: "/dev/watchdog",
		Modules: piModules[:], Disks: piDisks[:], Notes: piNotes + "; its Ethernet is on USB: name dwc2 and smsc95xx (3 B) or lan78xx (3 B+) in [board] modules"},
	{Name: "raspberrypi-zero-2", compatible: "raspberrypi,model-zero-2", arches: piArches[:], Console: "ttyS1", Watchdog: "/dev/watchdog",
		Modules: piModules[:], Disks: piDisks[:], Notes: piNotes},
	{Name: "qemu-virt-arm64", compatible: "linux,dummy-virt", arches: []string{"arm64"}, Console: "ttyAMA0",
		Modules: containerModules[:], NICs: virtioNICs[:], Disks: virtioDisks[:], Notes: "QEMU -M virt: PL011 console, no watchdog unless one is added"},
	{Name: "qemu-virt-arm", compatible: "linux,dummy-virt", arches: []string{"arm"}, Console: "ttyAMA0",
		Modules: containerModules[:], NICs: virtioNICs[:], Disks: virtioDisks[:], Notes: "QEMU -M virt (32-bit): PL011 console, no watchdog unless one is added"},
	{Name: "qemu-virt-riscv64", compatible: "riscv-virtio", arches: []string{"riscv64"}, Console: "ttyS0",
		Modules: containerModules[:], NICs: virtioNICs[:], Disks: virtioDisks[:], Notes: "QEMU -M virt (RISC-V): 8250 console, no watchdog"},
	{Name: "qemu-x86", model: "QEMU", arches: []string{"amd64"}, Console: "ttyS0", Watchdog: "/dev/watchdog",
		Modules: []string{"i6300esb", "overlay"}, NICs: virtioNICs[:], Disks: virtioDisks[:],
		Notes: "QEMU pc/q35: 8250 console; the i6300esb watchdog when QEMU has -device i6300esb"},
	{Name: "generic-x86", arches: []string{"amd64"}, Console: "ttyS0", Watchdog: "/dev/watchdog", Modules: containerModules[:],
		NICs: []string{"e1000e", "igb", "igc", "r8169", "e1000", "virtio_pci", "virtio_net"}, Disks: pcDisks[:]},
	{Name: "generic-arm64", arches: []string{"arm64"}, Console: "ttyAMA0", Watchdog: "/dev/watchdog", Modules: containerModules[:],
		NICs: virtioNICs[:], Disks: []string{"mmc_block", "usb_storage", "sd_mod", "virtio_pci", "virtio_blk"}},
	{Name: "generic", Console: "console", Watchdog: "/dev/watchdog", Modules: containerModules[:]},
}

// match picks b's profile and says why.
func match(b Board) (Profile, string) {
	for _, p := range Profiles {
		switch {
		case p.compatible != "":
			if !p.ForArch(b.Arch) {
				continue
			}
			for _, c := range b.Compatible {
				if strings.HasPrefix(c, p.compatible) {
					return p, fmt.Sprintf("device tree compatible %q", c)
				}
			}
		case p.model != "":
			if strings.Contains(b.Model, p.model) && p.ForArch(b.Arch) {
				return p, fmt.Sprintf("model %q contains %q", b.Model, p.model)
			}
		case len(p.arches) > 0:
			if p.ForArch(b.Arch) {
				return p, fmt.Sprintf("no specific profile; architecture %s", b.Arch)
			}
		default:
			return p, "no specific profile"
		}
	}
	return Profiles[len(Profiles)-1], "no specific profile"
}
