package board

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"berth/internal/rtnl"
)

// TestUplinkStatic: loopback comes up; an interface matched by its MAC
// address gets its address, MTU, default route and DNS server and makes
// the uplink ready; one without a gateway is configured but is no
// uplink; one that does not exist yet is waited for and configured when
// it appears.
func TestUplinkStatic(t *testing.T) {
	t.Parallel()
	if !inNewNetNS(t) {
		return
	}
	c, err := rtnl.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mac := net.HardwareAddr{0x52, 0x54, 0, 0, 7, 2}
	if err := c.Do(rtnl.AddVeth(rtnl.Veth{Name: "st0", PeerName: "st0p", PeerMAC: mac})); err != nil {
		t.Fatal(err)
	}
	if lo, _ := net.InterfaceByName("lo"); lo.Flags&net.FlagUp != 0 {
		t.Fatal("loopback is up before the uplink starts")
	}
	run := startUplink(t,
		Interface{MAC: mac, Address: netip.MustParsePrefix("192.168.7.2/24"), Gateway: netip.MustParseAddr("192.168.7.1"),
			DNS: []netip.Addr{netip.MustParseAddr("192.168.7.53")}, MTU: 1400},
		Interface{Name: "late0", Address: netip.MustParsePrefix("10.9.0.2/24")},
	)
	if lo, _ := net.InterfaceByName("lo"); lo.Flags&net.FlagUp == 0 {
		t.Error("loopback is not up")
	}
	waitFor(t, "the static uplink", run.ready)
	ifc, err := net.InterfaceByName("st0p")
	if err != nil {
		t.Fatal(err)
	}
	if ifc.MTU != 1400 || ifc.Flags&net.FlagUp == 0 {
		t.Errorf("st0p: mtu %d, flags %v; want 1400, up", ifc.MTU, ifc.Flags)
	}
	if got := kernelAddrs(t, "st0p"); !slices.Equal(got, []string{"192.168.7.2/24"}) {
		t.Errorf("addresses %v", got)
	}
	if lft := validLifetime(t, "st0p"); lft != forever {
		t.Errorf("a static address's lifetime is %d s", lft)
	}
	if gw := defaultGateways(routeFile)["st0p"]; gw != "192.168.7.1" {
		t.Errorf("default route via %q, want 192.168.7.1", gw)
	}
	if resolv, _ := os.ReadFile(run.resolv); !strings.HasSuffix(string(resolv), "\nnameserver 192.168.7.53\n") {
		t.Errorf("resolv.conf:\n%s", resolv)
	}
	st := run.u.Status()
	if st[0].Config != "mac 52:54:00:00:07:02" || st[0].Name != "st0p" || st[0].State != "configured" || st[0].Method != "static" {
		t.Errorf("status %+v", st[0])
	}
	waitFor(t, "late0 to be waited for", func() bool { return run.u.Status()[1].State == "waiting for the link" })

	if err := c.Do(rtnl.AddVeth(rtnl.Veth{Name: "late0", PeerName: "late0p"})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "late0 to be configured", func() bool { return run.u.Status()[1].State == "configured, without a gateway" })
	if got := kernelAddrs(t, "late0"); !slices.Equal(got, []string{"10.9.0.2/24"}) {
		t.Errorf("late0 addresses %v", got)
	}
	if run.logged("late0: appeared as late0 after") != 1 {
		t.Error("late0's appearance is not logged")
	}
}

// TestUplinkLateLink: an uplink whose link does not exist blocks nothing
// and says what it waits for; once the link appears it gets its lease.
func TestUplinkLateLink(t *testing.T) {
	t.Parallel()
	if !inNewNetNS(t) {
		return
	}
	run := startUplink(t, Interface{Name: "late0", DHCP: true}, Interface{Name: "gone0", DHCP: true})
	waitFor(t, "both to wait for their link", func() bool {
		_, why := run.u.Ready()
		return why == "late0: waiting for the link; gone0: waiting for the link"
	})
	startServer(t, newTestLAN(t, "late0"), normalServer("10.7.0.15", 3600, -1, -1))
	waitFor(t, "the lease", run.ready)
	if st := run.u.Status(); st[0].State != "bound" || st[1].State != "waiting for the link" {
		t.Errorf("status %+v", st)
	}
}

// TestUplinkLeaseInBridgeSubnet: a lease in the containers' bridge
// subnet is taken, with a warning that says what to change; one beside
// it is taken without.
func TestUplinkLeaseInBridgeSubnet(t *testing.T) {
	t.Parallel()
	if !inNewNetNS(t) {
		return
	}
	run := startUplink(t, Interface{Name: "lan0", DHCP: true}, Interface{Name: "lan1", DHCP: true})
	startServer(t, newTestLAN(t, "lan0"), normalServer("10.88.3.15", 3600, -1, -1))
	startServer(t, newTestLAN(t, "lan1"), normalServer("10.89.3.15", 3600, -1, -1))
	waitFor(t, "both leases", func() bool {
		st := run.u.Status()
		return st[0].State == "bound" && st[1].State == "bound"
	})
	if run.logged("warning: lan0: the lease's 10.88.3.0/24 overlaps the containers' bridge subnet 10.88.0.0/16: their traffic may leave by lan0; give [network] bridge another subnet") != 1 {
		t.Error("the lease in the bridge's subnet is not logged")
	}
	if run.logged("warning: lan1") != 0 {
		t.Error("the lease beside the bridge's subnet is logged")
	}
}

// TestResolvConfAtomic: resolv.conf is replaced by rename, never written
// in place, and a symlink at its path is replaced, not followed.
func TestResolvConfAtomic(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "resolv.conf")
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	u := &Uplink{cfg: UplinkConfig{ResolvConf: path, Logf: t.Logf, Debugf: t.Logf},
		links: []*link{{cfg: Interface{DNS: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}}},
			{cfg: Interface{DNS: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.4")}}}}}
	u.writeResolv()
	got, _ := os.ReadFile(path)
	want := "# written by berth from [[network.interface]] and DHCP leases\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n"
	if string(got) != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", got, want)
	}
	if kept, _ := os.ReadFile(target); string(kept) != "keep\n" {
		t.Errorf("the symlink's target was written: %q", kept)
	}
	if fi, _ := os.Lstat(path); fi.Mode() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".resolv.conf.*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestDefaultGateways reads /proc/net/route as the kernel writes it.
func TestDefaultGateways(t *testing.T) {
	route := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t00000000\t0202000A\t0003\t0\t0\t5\t00000000\t0\t0\t0\n" +
		"eth0\t00000000\t0302000A\t0003\t0\t0\t1\t00000000\t0\t0\t0\n" +
		"eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth1\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n"
	path := filepath.Join(t.TempDir(), "route")
	if err := os.WriteFile(path, []byte(route), 0o644); err != nil {
		t.Fatal(err)
	}
	got := defaultGateways(path)
	// The file holds each address as the number its bytes make in memory.
	want := "10.0.2.3"
	if !littleEndian() {
		want = "3.2.0.10"
	}
	if len(got) != 1 || got["eth0"] != want {
		t.Errorf("default gateways %v, want eth0 via %s (the lowest metric; eth1's route has no gateway)", got, want)
	}
}

func littleEndian() bool { return binary.NativeEndian.Uint16([]byte{1, 0}) == 1 }
