package board

import (
	"slices"
	"testing"
)

// TestProfileLists: the profiles' module, NIC and disk lists, written out
// as literals (profiles.go), hold the lists they are made of: every
// profile loads ContainerModules last, and each written-out list is the
// append it replaced.
func TestProfileLists(t *testing.T) {
	endsWith := func(list, tail []string) bool {
		return len(list) >= len(tail) && slices.Equal(list[len(list)-len(tail):], tail)
	}
	for _, p := range Profiles {
		if !endsWith(p.Modules, ContainerModules) {
			t.Errorf("%s: modules %v do not end with ContainerModules %v", p.Name, p.Modules, ContainerModules)
		}
	}
	byName := map[string]Profile{}
	for _, p := range Profiles {
		byName[p.Name] = p
	}
	// The lists as the appends they replace made them.
	for _, c := range []struct {
		name string
		got  []string
		want []string
	}{
		{"raspberrypi-3 modules", byName["raspberrypi-3"].Modules, slices.Concat([]string{"bcm2835_wdt"}, ContainerModules)},
		{"qemu-x86 modules", byName["qemu-x86"].Modules, slices.Concat([]string{"i6300esb"}, ContainerModules)},
		{"generic-x86 NICs", byName["generic-x86"].NICs, slices.Concat([]string{"e1000e", "igb", "igc", "r8169", "e1000"}, virtioNICs[:])},
		{"generic-x86 disks", byName["generic-x86"].Disks, slices.Concat([]string{"ahci", "nvme", "sd_mod", "xhci_pci", "usb_storage"}, virtioDisks[:])},
		{"generic-arm64 disks", byName["generic-arm64"].Disks, slices.Concat([]string{"mmc_block", "usb_storage", "sd_mod"}, virtioDisks[:])},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
}
