package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"berth/board"
)

// TestBoardList shows every profile berth knows, in the order it tries
// them, with what selects it and what it sets up: as a table, and as JSON
// for scripts.
func TestBoardList(t *testing.T) {
	status, stdout, stderr := berth(t, "board", "--list")
	if status != 0 || stderr != "" {
		t.Fatalf("berth board --list: %d %s", status, stderr)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	if len(lines) != len(board.Profiles)+1 {
		t.Fatalf("%d lines for %d profiles:\n%s", len(lines), len(board.Profiles), stdout)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "PROFILE MATCH CONSOLE WATCHDOG MODULES NIC DRIVERS DISK DRIVERS NOTES" {
		t.Errorf("header %q", lines[0])
	}
	for i, p := range board.Profiles {
		if !strings.HasPrefix(lines[i+1], p.Name+" ") {
			t.Errorf("line %d is not profile %s: %q", i+1, p.Name, lines[i+1])
		}
	}
	for _, w := range []string{
		"raspberrypi-4 ", "device tree compatible raspberrypi,4*, arch arm64 or arm", "ttyS1", "bcm2835_wdt overlay", "genet",
		"cgroup_enable=memory",
		"qemu-x86 ", `model contains "QEMU", arch amd64`, "i6300esb overlay", "virtio_pci virtio_net",
		"generic-x86 ", "e1000e igb igc r8169 e1000", "ahci nvme sd_mod xhci_pci usb_storage virtio_pci virtio_blk",
		"sdhci_iproc mmc_block usb_storage sd_mod",
		"generic ", "any board",
	} {
		if !strings.Contains(stdout, w) {
			t.Errorf("the table lacks %q:\n%s", w, stdout)
		}
	}

	status, stdout, stderr = berth(t, "board", "--list", "--json")
	if status != 0 || stderr != "" {
		t.Fatalf("berth board --list --json: %d %s", status, stderr)
	}
	var got []struct {
		Name       string   `json:"name"`
		Match      string   `json:"match"`
		Console    string   `json:"console"`
		Watchdog   string   `json:"watchdog"`
		Modules    []string `json:"modules"`
		NICDrivers []string `json:"nic_drivers"`
		Disks      []string `json:"disk_drivers"`
		Notes      string   `json:"notes"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if len(got) != len(board.Profiles) {
		t.Fatalf("%d profiles in JSON, want %d", len(got), len(board.Profiles))
	}
	for i, p := range board.Profiles {
		g := got[i]
		if g.Name != p.Name || g.Match != p.Rule() || g.Console != p.Console || g.Watchdog != p.Watchdog ||
			strings.Join(g.Modules, " ") != strings.Join(p.Modules, " ") || strings.Join(g.NICDrivers, " ") != strings.Join(p.NICs, " ") ||
			strings.Join(g.Disks, " ") != strings.Join(p.Disks, " ") || g.Notes != p.Notes {
			t.Errorf("profile %d: %+v, want %+v (%s)", i, g, p, p.Rule())
		}
	}
}
