package appliance

import (
	"slices"
	"testing"

	"berth/boot"
)

// TestModulesFor checks which modules an initramfs carries for a config's
// features: disk drivers and the filesystem with [storage], the bridge
// network's modules with a bridge container, NIC drivers with an
// interface, and none of them without.
func TestModulesFor(t *testing.T) {
	const container = "[[container]]\nname = \"a\"\nimage = \"a.tar\"\ncommand = [\"true\"]\n"
	tests := []struct {
		name, config string
		want, not    []string
	}{
		{"plain", container, []string{"overlay"}, []string{"ext4", "virtio_blk", "bridge", "nft_masq", "virtio_net"}},
		{"storage", "[storage]\ndevice = \"LABEL=data\"\n" + container, []string{"ext4", "virtio_blk", "ahci"}, []string{"bridge", "virtio_net"}},
		{"storage vfat", "[storage]\ndevice = \"LABEL=DATA\"\nfstype = \"vfat\"\n" + container, []string{"vfat", "virtio_blk"}, []string{"ext4"}},
		{"bridge", container + "net = \"bridge\"\n", []string{"bridge", "veth", "nf_tables", "nft_masq"}, []string{"ext4", "virtio_net"}},
		{"uplink", "[[network.interface]]\nname = \"eth0\"\ndhcp = true\n" + container, []string{"virtio_net", "e1000e"}, []string{"bridge", "ext4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := boot.ParseConfig("berth.toml", []byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			_, optional := modulesFor(cfg, "amd64")
			for _, m := range tc.want {
				if !slices.Contains(optional, m) {
					t.Errorf("modules %v lack %s", optional, m)
				}
			}
			for _, m := range tc.not {
				if slices.Contains(optional, m) {
					t.Errorf("modules %v hold %s", optional, m)
				}
			}
		})
	}
}
