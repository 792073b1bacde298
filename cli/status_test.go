package cli

import (
	"testing"
	"time"

	"berth/board"
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
