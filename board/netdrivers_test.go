package board

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestNICDrivers: the drivers of network devices without one are loaded
// by modalias, also for devices a loaded driver brings (virtio_pci makes
// the virtio device virtio_net drives); other devices, and devices that
// have a driver, are left alone.
func TestNICDrivers(t *testing.T) {
	ix, calls := fakeModules(t, map[string]string{
		"modules.dep": "kernel/drivers/virtio/virtio_pci.ko:\nkernel/drivers/net/virtio_net.ko:\n" +
			"kernel/drivers/block/virtio_blk.ko:\nkernel/drivers/net/ethernet/stmicro/stmmac/dwmac-rk.ko:\n",
		"modules.alias": "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nalias virtio:d00000001v* virtio_net\n" +
			"alias virtio:d00000002v* virtio_blk\nalias of:N*T*Crockchip,rk3568-gmac* dwmac_rk\n",
	}, nil)
	sys := t.TempDir()
	dev := func(bus, name string, files map[string]string) { fakeDevice(t, sys, bus, name, files) }
	dev("pci", "0000:00:03.0", map[string]string{"class": "0x020000", "modalias": "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"})
	dev("pci", "0000:00:04.0", map[string]string{"class": "0x010000", "modalias": "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"})
	dev("pci", "0000:00:05.0", map[string]string{"class": "0x020000", "modalias": "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"})
	if err := os.Symlink("../../../bus/pci/drivers/e1000", filepath.Join(sys, "bus/pci/devices/0000:00:05.0/driver")); err != nil {
		t.Fatal(err)
	}
	dev("platform", "fe2a0000.ethernet", map[string]string{"modalias": "of:NethernetT(null)Crockchip,rk3568-gmacCsnps,dwmac-4.20a"})
	dev("platform", "fe2b0000.serial", map[string]string{"modalias": "of:NserialT(null)Csnps,dw-apb-uart"})
	insmod := ix.insmod
	ix.insmod = func(path string) error {
		if moduleName(path) == "virtio_pci" { // the PCI devices' virtio devices appear
			dev("virtio", "virtio0", map[string]string{"device": "0x0001", "modalias": "virtio:d00000001v00001AF4"})
			dev("virtio", "virtio1", map[string]string{"device": "0x0002", "modalias": "virtio:d00000002v00001AF4"})
		}
		return insmod(path)
	}
	loaded, errs := ix.loadNICDrivers(sys)
	if len(errs) > 0 {
		t.Errorf("errors: %v", errs)
	}
	want := []string{"virtio_pci", "dwmac_rk", "virtio_net"}
	if !slices.Equal(*calls, want) || !slices.Equal(loaded, want) {
		t.Errorf("loaded %v (reported %v), want %v", *calls, loaded, want)
	}
}

// fakeDevice makes the device name of bus under the fake sysfs sys, with
// files (each a line).
func fakeDevice(t *testing.T, sys, bus, name string, files map[string]string) {
	t.Helper()
	d := filepath.Join(sys, "bus", bus, "devices", name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, v := range files {
		if err := os.WriteFile(filepath.Join(d, f), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
