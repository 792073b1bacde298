package board

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDetect builds device-tree and DMI trees as the kernel shows them and
// checks the profile each picks.
func TestDetect(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		arch    string
		profile string
		model   string
	}{
		{"raspberry pi 4", map[string]string{
			"proc/device-tree/model":      "Raspberry Pi 4 Model B Rev 1.4\x00",
			"proc/device-tree/compatible": "raspberrypi,4-model-b\x00brcm,bcm2711\x00",
		}, "arm64", "raspberrypi-4", "Raspberry Pi 4 Model B Rev 1.4"},
		{"raspberry pi 5", map[string]string{
			"proc/device-tree/model":      "Raspberry Pi 5 Model B Rev 1.0\x00",
			"proc/device-tree/compatible": "raspberrypi,5-model-b\x00brcm,bcm2712\x00",
		}, "arm64", "raspberrypi-5", "Raspberry Pi 5 Model B Rev 1.0"},
		{"raspberry pi 3", map[string]string{
			"proc/device-tree/compatible": "raspberrypi,3-model-b-plus\x00brcm,bcm2837\x00",
		}, "arm64", "raspberrypi-3", "generic"},
		{"qemu virt", map[string]string{
			"proc/device-tree/compatible": "linux,dummy-virt\x00",
		}, "arm64", "qemu-virt-arm64", "generic"},
		{"qemu pc", map[string]string{
			"sys/class/dmi/id/sys_vendor":   "QEMU\n",
			"sys/class/dmi/id/product_name": "Standard PC (i440FX + PIIX, 1996)\n",
		}, "amd64", "qemu-x86", "QEMU Standard PC (i440FX + PIIX, 1996)"},
		{"some x86 box", map[string]string{
			"sys/class/dmi/id/sys_vendor":   "Advantech\n",
			"sys/class/dmi/id/product_name": "UNO-2271G\n",
		}, "amd64", "generic-x86", "Advantech UNO-2271G"},
		{"unknown arm64 board", map[string]string{
			"proc/device-tree/model":      "Acme Gateway\x00",
			"proc/device-tree/compatible": "acme,gw\x00",
		}, "arm64", "generic-arm64", "Acme Gateway"},
		{"nothing", nil, "riscv64", "generic", "generic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir() + "/"
			for name, content := range tc.files {
				p := filepath.Join(root, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b := detectIn(root)
			b.Arch = tc.arch
			b.Profile, b.Reason = match(b)
			if b.Profile.Name != tc.profile || b.Model != tc.model {
				t.Errorf("got profile %s model %q (%s), want %s %q", b.Profile.Name, b.Model, b.Reason, tc.profile, tc.model)
			}
		})
	}
}
