package cli

import (
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"berth/board"
	"berth/boot"
)

// TestDescribeInterface: berth status's line per interface.
func TestDescribeInterface(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		in   board.InterfaceStatus
		want string
	}{
		{board.InterfaceStatus{Config: "eth0", Name: "eth0", MAC: "52:54:00:12:34:56", Method: "dhcp", State: "bound",
			Addresses: []string{"10.0.2.15/24", "fe80::5054:ff:fe12:3456/64"}, Gateway: "10.0.2.2", DNS: []string{"10.0.2.4", "10.0.2.2"},
			Lease: &board.LeaseStatus{Seconds: 86400, Expires: &exp, ExpiresInSec: 3600.4}},
			"eth0 (52:54:00:12:34:56) dhcp bound: 10.0.2.15/24, gateway 10.0.2.2, dns 10.0.2.4 10.0.2.2, lease 24h0m0s expires in 1h0m0s"},
		{board.InterfaceStatus{Config: "mac 52:54:00:00:07:02", Name: "eth1", MAC: "52:54:00:00:07:02", Method: "static",
			State: "configured, without a gateway", Addresses: []string{"192.168.7.2/24"}},
			"mac 52:54:00:00:07:02 = eth1 (52:54:00:00:07:02) static configured, without a gateway: 192.168.7.2/24"},
		{board.InterfaceStatus{Config: "uplink0", Method: "dhcp", State: "waiting for the link"},
			"uplink0 dhcp waiting for the link"},
		{board.InterfaceStatus{Config: "eth0", Name: "eth0", Method: "dhcp", State: "bound", Lease: &board.LeaseStatus{}},
			"eth0 dhcp bound: lease forever"},
	}
	for _, tc := range tests {
		if got := describeInterface(tc.in); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

// TestPrintStorage: berth status's storage line in each state.
func TestPrintStorage(t *testing.T) {
	tests := []struct {
		in   *boot.StorageInfo
		want string
	}{
		{nil, ""},
		{&boot.StorageInfo{Device: "LABEL=data", Path: "/dev/vda", FS: &board.FSInfo{Type: "ext4", Label: "data"}, FSType: "ext4", Mount: "/data",
			State: "mounted", SizeBytes: 1 << 30, FreeBytes: 512 << 20, StateDir: "/data/berth", Volumes: "/data/volumes"},
			`storage  LABEL=data: /dev/vda (ext4 "data") mounted at /data (ext4), 512 MiB free of 1 GiB; state in /data/berth, volumes in /data/volumes` + "\n"},
		{&boot.StorageInfo{Device: "UUID=0000-0001", Path: "/dev/sda1", FS: &board.FSInfo{Type: "vfat", UUID: "0000-0001"}, FSType: "vfat", Mount: "/data",
			State: "mounted", StateDir: "/data/berth", Volumes: "/data/volumes"},
			"storage  UUID=0000-0001: /dev/sda1 mounted at /data (vfat), 0 B free of 0 B; state in /data/berth, volumes in /data/volumes\n"},
		{&boot.StorageInfo{Device: "LABEL=data", FSType: "ext4", Mount: "/data", State: "missing", Error: "missing: waited 10s for LABEL=data", StateDir: "/var/lib/berth"},
			"storage  LABEL=data: missing: waited 10s for LABEL=data; containers with volumes do not start; state in /var/lib/berth\n"},
		{&boot.StorageInfo{Device: "/dev/sda1", Path: "/dev/sda1", FSType: "ext4", Mount: "/data", State: "failed", Error: "mount /dev/sda1 at /data as ext4: invalid argument", StateDir: "/var/lib/berth"},
			"storage  /dev/sda1: failed: mount /dev/sda1 at /data as ext4: invalid argument; containers with volumes do not start; state in /var/lib/berth\n"},
		{&boot.StorageInfo{Device: "LABEL=data", FSType: "ext4", Mount: "/data", State: "host", StateDir: "/s", Volumes: "/s/volumes"},
			"storage  LABEL=data: not mounted (berth boot leaves this host's disks alone); state in /s, volumes in /s/volumes\n"},
	}
	for _, tc := range tests {
		var b strings.Builder
		w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		printStorage(w, tc.in)
		w.Flush()
		if b.String() != tc.want {
			t.Errorf("got  %q\nwant %q", b.String(), tc.want)
		}
	}
}
