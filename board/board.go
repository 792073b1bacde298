// Package board tells which hardware berth runs on — from the device tree
// (ARM boards) or DMI (x86) — and what that board needs: its console, its
// watchdog and the kernel modules to load (modprobe.go, also as the
// kernel's modprobe). It sets up the appliance's own network: loopback,
// the NIC drivers, and each uplink by a static address or its own DHCPv4
// client (uplink.go, dhcp.go). Of berth it imports only internal utility
// packages (internal/rtnl).
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
	Model string `json:"model"`
	// Compatible lists the device tree's compatible strings, most
	// specific first (ARM); empty on x86.
	Compatible []string `json:"compatible,omitempty"`
	// Source says where Model came from.
	Source string `json:"source"`
	// Arch is the GOARCH berth was built for.
	Arch string `json:"arch"`
	// Profile is the matching entry of Profiles and why it matched.
	Profile Profile `json:"profile"`
	Reason  string  `json:"reason"`
}

// Detect reads the board model from /proc/device-tree (model and
// compatible) or /sys/class/dmi/id, and picks its profile.
func Detect() Board { return detectIn("/") }

// detectIn is Detect with the filesystem rooted at root, for tests.
func detectIn(root string) Board {
	b := Board{Model: "generic", Source: "no device tree or DMI data", Arch: runtime.GOARCH}
	dt := root + "proc/device-tree/"
	if m := readTrim(dt + "model"); m != "" {
		b.Model, b.Source = m, "/proc/device-tree/model"
	}
	if c := readRaw(dt + "compatible"); c != "" {
		for _, s := range strings.Split(strings.TrimRight(c, "\x00"), "\x00") {
			if s != "" {
				b.Compatible = append(b.Compatible, s)
			}
		}
	}
	if b.Source == "no device tree or DMI data" {
		dmi := root + "sys/class/dmi/id/"
		vendor, product := readTrim(dmi+"sys_vendor"), readTrim(dmi+"product_name")
		if product != "" {
			b.Model = strings.TrimSpace(vendor + " " + product)
			b.Source = "/sys/class/dmi/id (sys_vendor, product_name)"
		}
	}
	b.Profile, b.Reason = match(b)
	return b
}

// readTrim returns a small sysfs or device-tree file's text without
// trailing NULs and spaces, or "".
func readTrim(path string) string {
	return strings.TrimSpace(strings.TrimRight(readRaw(path), "\x00"))
}

func readRaw(path string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) > 4096 {
		return ""
	}
	return string(data)
}
