package board

import (
	"fmt"
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
	// Notes are shown by `berth board`.
	Notes string `json:"notes,omitempty"`

	// match selects the profile: a compatible string prefix, a model
	// substring, or the architecture for the generic profiles; arch also
	// narrows the other two.
	compatible, model, arch string
}

// commonModules are what berth's containers use: overlay for writable
// layers on shared images.
var commonModules = []string{"overlay"}

// piModules are a Raspberry Pi's: its watchdog, which is also what powers
// it off and reboots it, then commonModules.
var piModules = append([]string{"bcm2835_wdt"}, commonModules...)

// piNotes are shown for every Raspberry Pi.
const piNotes = "Raspberry Pi kernels leave the memory cgroup off unless the command line has cgroup_enable=memory, " +
	"and Raspberry Pi firmware adds cgroup_disable=memory to it"

// Profiles are the boards berth knows, most specific first. The consoles
// of the Raspberry Pis are those of Debian's kernel and device trees,
// which name each UART after its serial alias: the mini UART (serial1) is
// ttyS1 on a 3, 4, 400 and Zero 2 W, whose PL011 (ttyAMA0) drives
// Bluetooth; Raspberry Pi OS's kernel calls the mini UART ttyS0.
var Profiles = []Profile{
	{Name: "raspberrypi-5", compatible: "raspberrypi,5", Console: "ttyAMA10", Watchdog: "/dev/watchdog",
		Modules: piModules, Notes: piNotes},
	{Name: "raspberrypi-4", compatible: "raspberrypi,4", Console: "ttyS1", Watchdog: "/dev/watchdog",
		Modules: piModules, Notes: piNotes},
	{Name: "raspberrypi-cm3", compatible: "raspberrypi,3-compute-module", Console: "ttyAMA0", Watchdog: "/dev/watchdog",
		Modules: piModules, Notes: piNotes + "; the Compute Module 3 has no Bluetooth: its console is the PL011"},
	{Name: "raspberrypi-3", compatible: "raspberrypi,3", Console: "ttyS1", Watchdog: "/dev/watchdog",
		Modules: piModules, Notes: piNotes},
	{Name: "raspberrypi-zero-2", compatible: "raspberrypi,model-zero-2", Console: "ttyS1", Watchdog: "/dev/watchdog",
		Modules: piModules, Notes: piNotes},
	{Name: "qemu-virt-arm64", compatible: "linux,dummy-virt", arch: "arm64", Console: "ttyAMA0",
		Modules: commonModules, Notes: "QEMU -M virt: PL011 console, no watchdog unless one is added"},
	{Name: "qemu-virt-arm", compatible: "linux,dummy-virt", arch: "arm", Console: "ttyAMA0",
		Modules: commonModules, Notes: "QEMU -M virt (32-bit): PL011 console, no watchdog unless one is added"},
	{Name: "qemu-virt-riscv64", compatible: "riscv-virtio", Console: "ttyS0",
		Modules: commonModules, Notes: "QEMU -M virt (RISC-V): 8250 console, no watchdog"},
	{Name: "qemu-x86", model: "QEMU", arch: "amd64", Console: "ttyS0", Watchdog: "/dev/watchdog",
		Modules: append([]string{"i6300esb"}, commonModules...),
		Notes:   "QEMU pc/q35: 8250 console; the i6300esb watchdog when QEMU has -device i6300esb"},
	{Name: "generic-x86", arch: "amd64", Console: "ttyS0", Watchdog: "/dev/watchdog", Modules: commonModules},
	{Name: "generic-arm64", arch: "arm64", Console: "ttyAMA0", Watchdog: "/dev/watchdog", Modules: commonModules},
	{Name: "generic", Console: "console", Watchdog: "/dev/watchdog", Modules: commonModules},
}

// match picks b's profile and says why.
func match(b Board) (Profile, string) {
	for _, p := range Profiles {
		switch {
		case p.compatible != "":
			if p.arch != "" && p.arch != b.Arch {
				continue
			}
			for _, c := range b.Compatible {
				if strings.HasPrefix(c, p.compatible) {
					return p, fmt.Sprintf("device tree compatible %q", c)
				}
			}
		case p.model != "":
			if strings.Contains(b.Model, p.model) && (p.arch == "" || p.arch == b.Arch) {
				return p, fmt.Sprintf("model %q contains %q", b.Model, p.model)
			}
		case p.arch != "":
			if p.arch == b.Arch {
				return p, fmt.Sprintf("no specific profile; architecture %s", b.Arch)
			}
		default:
			return p, "no specific profile"
		}
	}
	return Profiles[len(Profiles)-1], "no specific profile"
}
