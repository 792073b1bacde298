package board

import (
	"slices"
	"testing"
)

// TestProfileLists: the profiles' module, NIC and disk lists, written out
// as literals (profiles.go), hold the lists they are made of: every
// profile loads ContainerModules, and the virtio drivers end the lists
// of the generic boards.
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
	for _, c := range []struct {
		name      string
		list      []string
		tail      []string
		wantFirst string
	}{
		{"raspberrypi-3", byName["raspberrypi-3"].Modules, ContainerModules, "bcm2835_wdt"},
		{"qemu-x86", byName["qemu-x86"].Modules, ContainerModules, "i6300esb"},
		{"generic-x86 NICs", byName["generic-x86"].NICs, virtioNICs, "e1000e"},
		{"generic-x86 disks", byName["generic-x86"].Disks, virtioDisks, "ahci"},
		{"generic-arm64 disks", byName["generic-arm64"].Disks, virtioDisks, "mmc_block"},
	} {
		if !endsWith(c.list, c.tail) || c.list[0] != c.wantFirst {
			t.Errorf("%s: %v, want %s first and %v last", c.name, c.list, c.wantFirst, c.tail)
		}
	}
}
