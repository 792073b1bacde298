package board

import (
	"os"
	"path/filepath"
	"strings"
)

// loadNICDrivers loads the drivers of the network devices the kernel has
// found and no driver has taken, as udev's coldplug would but for network
// devices only: PCI devices of class 02 (network controller), virtio
// devices of type 1 (net), and device-tree devices named "ethernet". Each
// device's modalias is looked up in modules.alias. A driver can bring
// more devices (virtio_pci makes the virtio devices virtio_net drives), so
// it looks again until nothing new loads. sys is where sysfs is mounted.
func loadNICDrivers(sys string) (loaded []string, errs []error) {
	ix, err := openModIndex("/")
	if err != nil {
		return nil, []error{err}
	}
	return ix.loadNICDrivers(sys)
}

func (ix *modIndex) loadNICDrivers(sys string) (loaded []string, errs []error) {
	tried := map[string]bool{}
	for round := 0; round < 4; round++ {
		var aliases []string
		for _, a := range nicModaliases(sys) {
			if !tried[a] {
				tried[a] = true
				aliases = append(aliases, a)
			}
		}
		if len(aliases) == 0 {
			break
		}
		for _, a := range aliases {
			if len(ix.resolve(a)) == 0 {
				continue // no driver in /lib/modules: built in, or not shipped
			}
			got, err := ix.probe(a)
			loaded = append(loaded, got...)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return loaded, errs
}

// nicModaliases lists the modaliases of network devices without a driver.
func nicModaliases(sys string) []string {
	var out []string
	for _, bus := range []struct {
		name string
		nic  func(dev string) bool
	}{
		{"pci", func(dev string) bool { return strings.HasPrefix(readTrim(dev+"/class"), "0x02") }},
		{"virtio", func(dev string) bool { return readTrim(dev+"/device") == "0x0001" }},
		{"platform", func(dev string) bool { return strings.HasPrefix(readTrim(dev+"/modalias"), "of:Nethernet") }},
	} {
		devs, _ := filepath.Glob(filepath.Join(sys, "bus", bus.name, "devices", "*"))
		for _, dev := range devs {
			if _, err := os.Lstat(dev + "/driver"); err == nil || !bus.nic(dev) {
				continue
			}
			if a := readTrim(dev + "/modalias"); a != "" {
				out = append(out, a)
			}
		}
	}
	return out
}
