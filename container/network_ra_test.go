package container

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/rtnl"
	"berth/internal/testutil"
)

// TestBridgeIgnoresRouterAds: a router advertisement on the bridge — any
// container with NET_RAW can send one (CVE-2020-13401) — gives a bridge
// container neither an address in its prefix nor a default route through
// its sender: eth0 keeps its link-local IPv6 address only. With and
// without a user namespace.
func TestBridgeIgnoresRouterAds(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		t.Skip("no IPv6 in this kernel")
	}
	c, err := rtnl.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Do(rtnl.AddBridge("br0", nil)); err != nil {
		t.Fatal(err)
	}
	// The sender's link-local address usable at once, not after DAD.
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/br0/accept_dad", []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	br, err := net.InterfaceByName("br0")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Do(rtnl.AddAddr(br.Index, netip.MustParsePrefix("10.99.0.1/24"), 0)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go sendRouterAds(t, br.Index, stop)
	rootfs := testutil.BusyboxRootfs(t)
	script := `sleep 2; cat /proc/sys/net/ipv6/conf/eth0/accept_ra; ip -6 addr show dev eth0; ip -6 route`
	for i, userns := range []*UserNS{nil, defaultNS()} {
		t.Run(fmt.Sprintf("userns=%v", userns != nil), func(t *testing.T) {
			nw := &Network{Bridge: br.Index, Link: fmt.Sprintf("cra%d", i), Address: netip.MustParsePrefix("10.99.0.2/24"),
				Gateway: netip.MustParseAddr("10.99.0.1")}
			exit, out, err := runWith(t, rootfs, Spec{Net: "bridge", UserNS: userns, Args: []string{"sh", "-c", script}}, Options{Network: nw})
			if err != nil || exit.Status() != 0 {
				t.Fatalf("start: %v, %s; output:\n%s", err, exit, out)
			}
			if !strings.HasPrefix(out, "0\n") || strings.Contains(out, "2001:db8:bad") || strings.Contains(out, "default via") || !strings.Contains(out, "fe80::") {
				t.Errorf("eth0 took the router advertisement, or keeps accepting them:\n%s", out)
			}
		})
	}
}

// sendRouterAds sends a router advertisement for 2001:db8:bad::/64, a
// default router for 30 minutes, to all nodes on the bridge every 100 ms
// until stop.
func sendRouterAds(t *testing.T, ifindex int, stop chan struct{}) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		t.Error(err)
		return
	}
	defer unix.Close(fd)
	unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255)
	unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex)
	ra := make([]byte, 16+32)
	ra[0] = 134                                     // router advertisement
	ra[4] = 64                                      // current hop limit
	binary.BigEndian.PutUint16(ra[6:], 1800)        // router lifetime
	opt := ra[16:]                                  // prefix information
	opt[0], opt[1], opt[2], opt[3] = 3, 4, 64, 0xc0 // on-link, autonomous
	binary.BigEndian.PutUint32(opt[4:], 86400)      // valid lifetime
	binary.BigEndian.PutUint32(opt[8:], 14400)      // preferred lifetime
	copy(opt[16:], netip.MustParseAddr("2001:db8:bad::").AsSlice())
	to := &unix.SockaddrInet6{Addr: netip.MustParseAddr("ff02::1").As16(), ZoneId: uint32(ifindex)}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		unix.Sendto(fd, ra, 0, to) // fails until the bridge has a port and an address
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}
