package board

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestStorageDrivers: the drivers on the way to a disk are loaded by
// modalias — controllers, then the devices they bring (virtio_pci's
// virtio block device, a USB stick's SCSI disk) — and nothing else: not a
// NIC's, not a device's that has a driver. A driver that fails is
// reported and not tried again by a later call.
func TestStorageDrivers(t *testing.T) {
	ix, calls := fakeModules(t, map[string]string{
		"modules.dep": "kernel/drivers/virtio/virtio_pci.ko:\nkernel/drivers/block/virtio_blk.ko:\n" +
			"kernel/drivers/net/virtio_net.ko:\nkernel/drivers/usb/host/xhci-pci.ko:\n" +
			"kernel/drivers/usb/storage/usb-storage.ko:\nkernel/drivers/scsi/sd_mod.ko:\n" +
			"kernel/drivers/mmc/host/sdhci-iproc.ko:\nkernel/drivers/mmc/core/mmc_block.ko:\n",
		"modules.alias": "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nalias virtio:d00000001v* virtio_net\n" +
			"alias virtio:d00000002v* virtio_blk\nalias pci:v*d*sv*sd*bc0Csc03i30* xhci_pci\n" +
			"alias usb:v*p*d*dc*dsc*dp*ic08isc06ip50in* usb_storage\nalias scsi:t-0x00* sd_mod\n" +
			"alias of:N*T*Cbrcm,bcm2835-sdhci* sdhci_iproc\nalias mmc:block mmc_block\n",
	}, map[string]error{"sdhci_iproc": errors.New("exec format error")})
	sys := t.TempDir()
	dev := func(bus, name string, files map[string]string) { fakeDevice(t, sys, bus, name, files) }
	dev("pci", "0000:00:03.0", map[string]string{"class": "0x020000", "modalias": "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"})
	dev("pci", "0000:00:04.0", map[string]string{"class": "0x010000", "modalias": "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"})
	dev("pci", "0000:00:05.0", map[string]string{"class": "0x0c0330", "modalias": "pci:v00001B36d0000000Dsv00001AF4sd00001100bc0Csc03i30"})
	dev("pci", "0000:00:06.0", map[string]string{"class": "0x010601", "modalias": "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"})
	if err := os.Symlink("../../../bus/pci/drivers/ahci", filepath.Join(sys, "bus/pci/devices/0000:00:06.0/driver")); err != nil {
		t.Fatal(err)
	}
	dev("platform", "3f300000.mmcnr", map[string]string{"modalias": "of:NmmcT(null)Cbrcm,bcm2835-sdhci"})
	dev("platform", "3f215040.serial", map[string]string{"modalias": "of:NserialT(null)Cbrcm,bcm2835-aux-uart"})
	insmod := ix.insmod
	ix.insmod = func(path string) error {
		switch moduleName(path) {
		case "virtio_pci": // both PCI virtio devices' virtio devices appear
			dev("virtio", "virtio0", map[string]string{"device": "0x0001", "modalias": "virtio:d00000001v00001AF4"})
			dev("virtio", "virtio1", map[string]string{"device": "0x0002", "modalias": "virtio:d00000002v00001AF4"})
		case "xhci_pci": // a USB stick: its mass-storage interface
			dev("usb", "1-1:1.0", map[string]string{"modalias": "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00"})
		case "usb_storage": // its SCSI disk
			dev("scsi", "0:0:0:0", map[string]string{"modalias": "scsi:t-0x00"})
		}
		return insmod(path)
	}
	tried := map[string]bool{}
	loaded, errs := ix.loadStorageDrivers(sys, tried)
	want := []string{"virtio_pci", "xhci_pci", "virtio_blk", "usb_storage", "sd_mod"}
	if !slices.Equal(loaded, want) {
		t.Errorf("loaded %v, want %v", loaded, want)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "sdhci_iproc") {
		t.Errorf("errors %v, want sdhci_iproc's", errs)
	}
	// A card appears later; the failed driver is not tried again.
	dev("mmc", "mmc0:0001", map[string]string{"modalias": "mmc:block"})
	*calls = nil
	loaded, errs = ix.loadStorageDrivers(sys, tried)
	if !slices.Equal(loaded, []string{"mmc_block"}) || !slices.Equal(*calls, []string{"mmc_block"}) || len(errs) > 0 {
		t.Errorf("second call loaded %v (tried %v), errors %v; want mmc_block alone", loaded, *calls, errs)
	}
}
