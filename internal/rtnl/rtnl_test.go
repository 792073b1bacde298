package rtnl

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inFreshNetNS runs f on a locked thread in a new network namespace, so
// the test touches nothing of the host's.
func inFreshNetNS(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		// A mount namespace too, for a sysfs of the new network namespace.
		if err := unix.Unshare(unix.CLONE_NEWNET | unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Errorf("make / private: %v", err)
			return
		}
		f()
	}()
	<-done
}

// childNetNS starts a process in a network namespace of its own and
// returns it and its namespace's fd.
func childNetNS(t *testing.T) (*exec.Cmd, *os.File) {
	t.Helper()
	cmd := exec.Command("sleep", "100")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ns, err := os.Open("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return cmd, ns
}

// TestBridgeAndVeth builds what a bridge container needs: a bridge, a
// veth whose peer is born in the container's namespace, addresses and a
// default route on both sides; then reads it all back from the kernel.
func TestBridgeAndVeth(t *testing.T) {
	child, ns := childNetNS(t)
	inFreshNetNS(t, func() {
		c, err := Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		brMAC := AddrMAC(netip.MustParseAddr("10.88.0.1"))
		if err := c.Do(AddBridge("br0", brMAC)); err != nil {
			t.Fatal(err)
		}
		br, err := net.InterfaceByName("br0")
		if err != nil || br.Flags&net.FlagUp == 0 {
			t.Fatalf("bridge: %+v %v", br, err)
		}
		mac := net.HardwareAddr{0x02, 0x42, 0x0a, 0x58, 0, 2}
		gw := netip.MustParsePrefix("10.88.0.1/16")
		err = c.Do(
			AddAddr(br.Index, gw, 0),
			AddVeth(Veth{Name: "vb0", Master: br.Index, PeerName: "eth0", PeerMAC: mac, NetNS: int(ns.Fd())}),
		)
		if err != nil {
			t.Fatal(err)
		}
		vb, err := net.InterfaceByName("vb0")
		if err != nil || vb.Flags&net.FlagUp == 0 {
			t.Fatalf("host end: %+v %v", vb, err)
		}
		// The bridge keeps its own address with a port (without one it
		// would take the port's).
		if br, _ = net.InterfaceByName("br0"); br.HardwareAddr.String() != "02:62:0a:58:00:01" || vb.HardwareAddr.String() == br.HardwareAddr.String() {
			t.Errorf("bridge address %s with a port of %s, want 02:62:0a:58:00:01", br.HardwareAddr, vb.HardwareAddr)
		}
		if err := c.Do(SetHairpin("vb0"), SetMTU(vb.Index, 1400)); err != nil {
			t.Fatal(err)
		}
		if vb, _ = net.InterfaceByName("vb0"); vb.MTU != 1400 {
			t.Errorf("mtu %d", vb.MTU)
		}
		sys := t.TempDir()
		if err := unix.Mount("sysfs", sys, "sysfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(sys, unix.MNT_DETACH)
		if got, _ := os.ReadFile(sys + "/class/net/vb0/brport/hairpin_mode"); strings.TrimSpace(string(got)) != "1" {
			t.Errorf("hairpin_mode %q", got)
		}
		addrs, _ := br.Addrs()
		if len(addrs) == 0 || addrs[0].String() != "10.88.0.1/16" {
			t.Errorf("bridge addresses %v", addrs)
		}
	})
	// Inside the child's namespace, from here, without entering it.
	cc, err := DialNS(int(ns.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	err = cc.Do(SetUp(1), SetUp(2),
		AddAddr(2, netip.MustParsePrefix("10.88.0.2/16"), time.Hour),
		AddDefaultRoute(2, netip.MustParseAddr("10.88.0.1")))
	if err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(child.Process.Pid)
	dev, _ := os.ReadFile("/proc/" + pid + "/net/dev")
	if !strings.Contains(string(dev), "eth0:") {
		t.Errorf("no eth0 in the child's namespace:\n%s", dev)
	}
	route, _ := os.ReadFile("/proc/" + pid + "/net/route")
	if !strings.Contains(string(route), "eth0\t00000000\t0100580A") { // default via 10.88.0.1, little endian
		t.Errorf("no default route via 10.88.0.1 in the child's namespace:\n%s", route)
	}
	trie, _ := os.ReadFile("/proc/" + pid + "/net/fib_trie")
	if !strings.Contains(string(trie), "10.88.0.2") {
		t.Errorf("no 10.88.0.2 in the child's namespace:\n%s", trie)
	}
	if err := cc.Do(DelDefaultRoute(2, netip.MustParseAddr("10.88.0.1")), DelAddr(2, netip.MustParsePrefix("10.88.0.2/16"))); err != nil {
		t.Fatal(err)
	}
	if route, _ := os.ReadFile("/proc/" + pid + "/net/route"); strings.Contains(string(route), "00000000\t0100580A") {
		t.Errorf("the default route is still there:\n%s", route)
	}
}

// TestRefusals: a refused request names what was asked, wraps the errno,
// and the others of its batch are still carried out.
func TestRefusals(t *testing.T) {
	inFreshNetNS(t, func() {
		c, err := Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.Do(AddBridge("br0", nil), AddBridge("br0", nil), AddBridge("br1", nil))
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "add bridge br0") {
			t.Fatalf("adding br0 twice: %v", err)
		}
		if _, err := net.InterfaceByName("br1"); err != nil {
			t.Errorf("the request after the refused one: %v", err)
		}
		if err := c.Do(DelLink("br1"), DelLink("nosuch")); !errors.Is(err, unix.ENODEV) {
			t.Errorf("deleting a missing link: %v", err)
		}
		if _, err := net.InterfaceByName("br1"); err == nil {
			t.Error("br1 not deleted")
		}
		err = c.Do(AddVeth(Veth{Name: strings.Repeat("x", 20), PeerName: "p"}))
		if err == nil || !strings.Contains(err.Error(), "add veth") {
			t.Errorf("a name over IFNAMSIZ: %v", err)
		}
	})
}

// TestSetUpName brings a fresh namespace's loopback up by its name, and
// fails on a name no link has.
func TestSetUpName(t *testing.T) {
	inFreshNetNS(t, func() {
		c, err := Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if lo, err := net.InterfaceByName("lo"); err != nil || lo.Flags&net.FlagUp != 0 {
			t.Fatalf("lo in a fresh namespace: %v, %v", lo, err)
		}
		if err := c.Do(SetUpName("lo")); err != nil {
			t.Fatal(err)
		}
		if lo, err := net.InterfaceByName("lo"); err != nil || lo.Flags&net.FlagUp == 0 {
			t.Errorf("lo after SetUpName: %v, %v", lo, err)
		}
		if err := c.Do(SetUpName("nosuch")); !errors.Is(err, unix.ENODEV) || !strings.Contains(err.Error(), "set link nosuch up") {
			t.Errorf("a missing link: %v", err)
		}
	})
}

// TestDefaultRouteMetric: default routes of different metrics coexist,
// where a second AddDefaultRoute replaces the first.
func TestDefaultRouteMetric(t *testing.T) {
	inFreshNetNS(t, func() {
		c, err := Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Do(AddVeth(Veth{Name: "a0", PeerName: "a1"}), AddVeth(Veth{Name: "b0", PeerName: "b1"})); err != nil {
			t.Fatal(err)
		}
		a, _ := net.InterfaceByName("a0")
		b, _ := net.InterfaceByName("b0")
		err = c.Do(AddAddr(a.Index, netip.MustParsePrefix("10.1.0.2/24"), 0), AddAddr(b.Index, netip.MustParsePrefix("10.2.0.2/24"), 0),
			AddDefaultRouteMetric(a.Index, netip.MustParseAddr("10.1.0.1"), 0),
			AddDefaultRouteMetric(b.Index, netip.MustParseAddr("10.2.0.1"), 1))
		if err != nil {
			t.Fatal(err)
		}
		route, _ := os.ReadFile("/proc/thread-self/net/route")
		for _, want := range []string{"a0\t00000000\t0100010A\t0003\t0\t0\t0\t", "b0\t00000000\t0100020A\t0003\t0\t0\t1\t"} {
			if !strings.Contains(string(route), want) {
				t.Errorf("no %q in\n%s", want, route)
			}
		}
	})
}

// TestSetMAC gives a bridge created without an address one of its own,
// which it then keeps as a port joins.
func TestSetMAC(t *testing.T) {
	inFreshNetNS(t, func() {
		c, err := Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Do(AddBridge("br0", nil)); err != nil {
			t.Fatal(err)
		}
		br, err := net.InterfaceByName("br0")
		if err != nil {
			t.Fatal(err)
		}
		mac := AddrMAC(netip.MustParseAddr("192.168.1.254"))
		if err := c.Do(SetMAC(br.Index, mac), AddVeth(Veth{Name: "vb0", Master: br.Index, PeerName: "pb0"})); err != nil {
			t.Fatal(err)
		}
		if br, _ = net.InterfaceByName("br0"); br.HardwareAddr.String() != "02:62:c0:a8:01:fe" {
			t.Errorf("bridge address %s, want 02:62:c0:a8:01:fe", br.HardwareAddr)
		}
		if err := c.Do(SetMAC(br.Index, net.HardwareAddr{1, 2, 3, 4, 5, 6})); err == nil || !strings.Contains(err.Error(), "set link") {
			t.Errorf("a multicast address: %v", err)
		}
	})
}

func TestAddrMAC(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"10.88.0.1", "02:62:0a:58:00:01"},
		{"10.88.255.254", "02:62:0a:58:ff:fe"},
		{"0.0.0.0", "02:62:00:00:00:00"},
		{"::1", ""},
		{"::ffff:10.88.0.1", ""},
	} {
		if got := AddrMAC(netip.MustParseAddr(tc.addr)).String(); got != tc.want {
			t.Errorf("AddrMAC(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestEachMessage splits a receive buffer into netlink messages without
// panicking on what a forged or truncated answer holds.
func TestEachMessage(t *testing.T) {
	msg := func(l uint32, extra int) []byte {
		b := make([]byte, 16+extra)
		binary.NativeEndian.PutUint32(b, l)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		n    int
		ok   bool
	}{
		{"empty", nil, 0, true},
		{"one header", msg(16, 0), 1, true},
		{"two, padded", append(msg(18, 4), msg(16, 0)...), 2, true},
		{"last one unpadded (length 18 of 18 bytes)", msg(18, 2), 1, true},
		{"length past the buffer", msg(64, 0), 0, false},
		{"length shorter than a header", msg(8, 0), 0, false},
		{"trailing bytes shorter than a header", append(msg(16, 0), 1, 2, 3), 1, true},
	}
	for _, tc := range tests {
		n := 0
		err := eachMessage(tc.b, func([]byte) { n++ })
		if (err == nil) != tc.ok || n != tc.n {
			t.Errorf("%s: %d messages, %v; want %d, ok=%v", tc.name, n, err, tc.n, tc.ok)
		}
	}
}

// FuzzEachMessage: any buffer is split without a panic, into messages
// that lie inside it.
func FuzzEachMessage(f *testing.F) {
	f.Add([]byte{18, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		total := 0
		_ = eachMessage(b, func(m []byte) { total += len(m) })
		if total > len(b) {
			t.Fatalf("%d bytes of messages in a %d-byte buffer", total, len(b))
		}
	})
}

// TestCarrier: the carrier follows the veth peer at once, down and up,
// and the count of losses moves by one per loss, however brief, and not
// otherwise; a missing link is refused by name.
func TestCarrier(t *testing.T) {
	inFreshNetNS(t, func() {
		c, err := Dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ip := func(args ...string) {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v\n%s", args, err, out)
			}
		}
		ip("link", "add", "cd0", "type", "veth", "peer", "name", "cd1")
		ip("link", "set", "cd0", "up")
		ip("link", "set", "cd1", "up")
		up, before, err := c.Carrier("cd0")
		if err != nil || !up {
			t.Fatalf("Carrier = %v, %d, %v; want up", up, before, err)
		}
		if up, again, err := c.Carrier("cd0"); err != nil || !up || again != before {
			t.Errorf("no flap: %v, the count went %d -> %d, %v", up, before, again, err)
		}
		ip("link", "set", "cd1", "down")
		if up, n, err := c.Carrier("cd0"); err != nil || up || n != before+1 {
			t.Errorf("peer down: %v, the count went %d -> %d, %v; want no carrier, one more", up, before, n, err)
		}
		ip("link", "set", "cd1", "up")
		if up, n, err := c.Carrier("cd0"); err != nil || !up || n != before+1 {
			t.Errorf("peer up again: %v, the count went %d -> %d, %v; want the carrier, one more", up, before, n, err)
		}
		if _, _, err := c.Carrier("nosuch"); !errors.Is(err, unix.ENODEV) || !strings.Contains(err.Error(), "get link nosuch") {
			t.Errorf("a missing link: %v", err)
		}
	})
}
