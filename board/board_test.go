package board

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
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
		{"qemu virt, 32-bit arm", map[string]string{
			"proc/device-tree/compatible": "linux,dummy-virt\x00",
		}, "arm", "qemu-virt-arm", "generic"},
		{"qemu virt riscv64", map[string]string{
			"proc/device-tree/model":      "riscv-virtio,qemu\x00",
			"proc/device-tree/compatible": "riscv-virtio\x00",
		}, "riscv64", "qemu-virt-riscv64", "riscv-virtio,qemu"},
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

// TestDebianDeviceTrees picks the profile of every Raspberry Pi device
// tree in Debian's arm64 kernel package from the /proc/device-tree view
// the kernel makes of it, and checks the profile against the tree: the
// console is the UART its /chosen/stdout-path names, as Debian's kernel
// names it, and the watchdog the profile loads is there.
func TestDebianDeviceTrees(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	dtbs, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "..", ".cache", "deb", "arm64", "linux-image", "usr", "lib", "linux-image-*", "broadcom", "*rpi*.dtb"))
	want := map[string]string{
		"bcm2837-rpi-3-b.dtb":      "raspberrypi-3",
		"bcm2837-rpi-3-b-plus.dtb": "raspberrypi-3",
		"bcm2837-rpi-3-a-plus.dtb": "raspberrypi-3",
		"bcm2837-rpi-cm3-io3.dtb":  "raspberrypi-cm3",
		"bcm2837-rpi-zero-2-w.dtb": "raspberrypi-zero-2",
		"bcm2711-rpi-4-b.dtb":      "raspberrypi-4",
		"bcm2711-rpi-400.dtb":      "raspberrypi-4",
		"bcm2711-rpi-cm4-io.dtb":   "raspberrypi-4",
	}
	seen := 0
	for _, dtb := range dtbs {
		name := filepath.Base(dtb)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(dtb)
			if err != nil {
				t.Fatal(err)
			}
			nodes, err := parseFDT(data)
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir() + "/"
			if err := writeProcDeviceTree(root, nodes); err != nil {
				t.Fatal(err)
			}
			b := detectIn(root)
			b.Arch = "arm64"
			b.Profile, b.Reason = match(b)
			if w, ok := want[name]; !ok || b.Profile.Name != w {
				t.Fatalf("%s (%q): profile %s (%s), want %q", name, b.Model, b.Profile.Name, b.Reason, w)
			}
			seen++
			if model := cString(nodes["/"]["model"]); b.Model != model {
				t.Errorf("model %q, want %q", b.Model, model)
			}
			tty, err := stdoutTTY(nodes)
			if err != nil {
				t.Fatal(err)
			}
			if b.Profile.Console != tty {
				t.Errorf("profile %s: console %s, but the device tree's stdout is %s", b.Profile.Name, b.Profile.Console, tty)
			}
			var wdt bool
			for _, n := range nodes {
				wdt = wdt || strings.Contains(cString(n["compatible"]), "brcm,bcm2835-pm-wdt") ||
					strings.Contains(cString(n["compatible"]), "brcm,bcm2835-pm")
			}
			if !wdt || !slices.Contains(b.Profile.Modules, "bcm2835_wdt") || b.Profile.Watchdog != "/dev/watchdog" {
				t.Errorf("watchdog: node in tree %v, profile modules %v, device %q", wdt, b.Profile.Modules, b.Profile.Watchdog)
			}
		})
	}
	if seen != len(want) {
		t.Errorf("checked %d of the %d device trees expected in Debian's package (found %d): run make fetch-arm64", seen, len(want), len(dtbs))
	}
}

// TestParseFDTBroken refuses blobs that are not device trees or are cut
// short, and survives corrupt ones.
func TestParseFDTBroken(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	dtbs, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "..", ".cache", "deb", "arm64", "linux-image", "usr", "lib", "linux-image-*", "broadcom", "bcm2837-rpi-3-b.dtb"))
	if len(dtbs) != 1 {
		t.Fatal("no bcm2837-rpi-3-b.dtb: run make fetch-arm64")
	}
	good, err := os.ReadFile(dtbs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 39, 40, 200, len(good) / 2, len(good) - 9} {
		if _, err := parseFDT(good[:n]); err == nil {
			t.Errorf("a blob cut to %d bytes parsed", n)
		}
	}
	// Any byte of the structure block turned to 0xff: an error or a
	// tree, never a panic.
	for i := int(binary.BigEndian.Uint32(good[8:])); i < len(good); i += 7 {
		bad := append([]byte(nil), good...)
		bad[i] = 0xff
		_, _ = parseFDT(bad)
	}
}
