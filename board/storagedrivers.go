package board

import (
	"os"
	"path/filepath"
	"strings"
)

// storageBuses are the devices whose drivers berth loads while it waits
// for the data partition, each a bus of /sys/bus and what makes one of its
// devices storage (or the way to it): PCI mass-storage (class 01: SATA,
// NVMe, virtio-blk) and USB (class 0c03) controllers; virtio block (2) and
// SCSI (8) devices; device-tree MMC/SD and USB host controllers; USB
// mass-storage interfaces (class 08); SCSI disks (sd_mod); MMC/SD cards
// (mmc_block).
var storageBuses = []struct {
	name    string
	storage func(dev string) bool
}{
	{"pci", func(dev string) bool {
		c := readTrim(dev + "/class")
		return strings.HasPrefix(c, "0x01") || strings.HasPrefix(c, "0x0c03")
	}},
	{"virtio", func(dev string) bool { d := readTrim(dev + "/device"); return d == "0x0002" || d == "0x0008" }},
	{"platform", func(dev string) bool {
		a := readTrim(dev + "/modalias")
		for _, n := range []string{"of:Nmmc", "of:Nsdhci", "of:Nusb", "of:Nsd"} {
			if strings.HasPrefix(a, n) {
				return true
			}
		}
		return false
	}},
	{"usb", func(dev string) bool { return strings.Contains(readTrim(dev+"/modalias"), "ic08") }},
	{"scsi", func(dev string) bool { return readTrim(dev+"/modalias") == "scsi:t-0x00" }},
	{"mmc", func(dev string) bool { return readTrim(dev+"/modalias") == "mmc:block" }},
}

// loadStorageDrivers loads, by modalias, the drivers of the storage
// devices under sys that have none, as udev's coldplug would but for the
// way to a disk only; like loadNICDrivers it looks again for what a
// loaded driver brings. Aliases no module has (built in, or not shipped)
// are skipped. tried holds the aliases looked at already, by this call
// and earlier ones: each is tried once.
func (ix *modIndex) loadStorageDrivers(sys string, tried map[string]bool) (loaded []string, errs []error) {
	for round := 0; round < 4; round++ {
		var aliases []string
		for _, a := range storageModaliases(sys) {
			if !tried[a] {
				tried[a] = true
				if len(ix.resolve(a)) > 0 {
					aliases = append(aliases, a)
				}
			}
		}
		if len(aliases) == 0 {
			break
		}
		for _, a := range aliases {
			got, err := ix.probe(a)
			loaded = append(loaded, got...)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return loaded, errs
}

// storageModaliases lists the modaliases of storage devices without a
// driver.
func storageModaliases(sys string) []string {
	var out []string
	for _, bus := range storageBuses {
		devs, _ := filepath.Glob(filepath.Join(sys, "bus", bus.name, "devices", "*"))
		for _, dev := range devs {
			if _, err := os.Lstat(dev + "/driver"); err == nil || !bus.storage(dev) {
				continue
			}
			if a := readTrim(dev + "/modalias"); a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}
