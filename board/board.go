// Package board tells which hardware berth runs on: the model from the
// device tree (ARM boards) or from DMI (x86), and the console the kernel
// writes to. It imports nothing else of berth.
package board

import (
	"os"
	"runtime"
	"strings"
)

// Board is what Detect found.
type Board struct {
	// Model is the board's name, e.g. "Raspberry Pi 4 Model B Rev 1.4",
	// "QEMU Standard PC (i440FX + PIIX, 1996)", or "generic".
	Model string
	// Source says where Model came from.
	Source string
	// Arch is the GOARCH berth was built for.
	Arch string
}

// Detect reads the board model from /proc/device-tree/model (ARM and RISC-V
// boards) or /sys/class/dmi/id (x86), else reports "generic".
func Detect() Board {
	b := Board{Model: "generic", Source: "no device tree or DMI data", Arch: runtime.GOARCH}
	if m := readTrim("/proc/device-tree/model"); m != "" {
		b.Model, b.Source = m, "/proc/device-tree/model"
		return b
	}
	vendor := readTrim("/sys/class/dmi/id/sys_vendor")
	product := readTrim("/sys/class/dmi/id/product_name")
	if product != "" {
		b.Model = strings.TrimSpace(vendor + " " + product)
		b.Source = "/sys/class/dmi/id"
	}
	return b
}

// readTrim returns a small sysfs or device-tree file's text without
// trailing NULs and spaces, or "".
func readTrim(path string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) > 4096 {
		return ""
	}
	return strings.TrimSpace(strings.TrimRight(string(data), "\x00"))
}
