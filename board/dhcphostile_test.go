package board

import (
	"encoding/binary"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDHCPHostile: before the real offer and the real ACK, the client
// gets answers of another transaction, for another client, truncated,
// oversized, not replies, without a server identifier, with a broken
// mask or an impossible address — each for an address of its own. It
// must take none of them, and must not write what a server sends as a
// host or domain name into a file or the hostname unless it is one.
func TestDHCPHostile(t *testing.T) {
	t.Parallel()
	if !inNewNetNS(t) {
		return
	}
	forged := func(typ byte, addr string, edit func(*reply)) reply {
		rep := ack(typ, addr, 3600, -1, -1)
		edit(&rep)
		return rep
	}
	hostile := []reply{
		forged(dhcpOffer, "10.7.0.66", func(r *reply) { r.xid = 0x12345678 }),
		forged(dhcpOffer, "10.7.0.66", func(r *reply) { r.chaddr = []byte{2, 0, 0, 0, 0, 9} }),
		forged(dhcpOffer, "10.7.0.67", func(r *reply) { r.extra, r.noEnd = []byte{51, 4, 0, 0}, true }), // truncated option
		forged(dhcpOffer, "10.7.0.68", func(r *reply) { r.padTo = 2000 }),
		forged(dhcpOffer, "10.7.0.69", func(r *reply) { r.op = 1 }),
		forged(dhcpOffer, "10.7.0.70", func(r *reply) { r.noServerID = true }),
		forged(dhcpOffer, "10.7.0.71", func(r *reply) { r.mask = []byte{255, 0, 255, 0} }),
		forged(dhcpOffer, "10.7.0.72", func(r *reply) { r.lease, r.extra = -1, []byte{51, 2, 0, 1} }), // lease time of 2 bytes
		forged(dhcpOffer, "224.0.0.5", func(*reply) {}),
		forged(dhcpOffer, "10.7.0.255", func(*reply) {}), // the subnet's broadcast address
		forged(dhcpAck, "10.7.0.73", func(*reply) {}),    // an ACK is no offer
	}
	srv := startServer(t, newTestLAN(t, "up0"), func(s *testServer, r seenRequest) {
		switch r.typ {
		case dhcpDiscover:
			for _, h := range hostile {
				s.send(r, h)
			}
			s.send(r, ack(dhcpOffer, "10.7.0.15", 3600, -1, -1))
		case dhcpRequest:
			s.send(r, forged(dhcpAck, "10.7.0.66", func(r *reply) { r.xid = 0x12345678 }))
			wrongNak := nak()
			wrongNak.xid = 0x12345678
			s.send(r, wrongNak)
			s.send(r, forged(dhcpAck, "10.7.0.15", func(r *reply) {
				r.hostname, r.domain = "evil\nnameserver 6.6.6.6", "a b;c"
				r.dns = append(r.dns, netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255"))
			}))
		}
	})
	run := startUplink(t, Interface{Name: "up0", DHCP: true})
	waitFor(t, "the lease", run.ready)

	if got := kernelAddrs(t, "up0"); !slices.Equal(got, []string{"10.7.0.15/24"}) {
		t.Errorf("addresses %v, want only 10.7.0.15/24", got)
	}
	reqs := srv.requests()
	if len(reqs) != 2 || reqs[1].requested != netip.MustParseAddr("10.7.0.15") {
		t.Errorf("the server saw %+v, want one REQUEST, for 10.7.0.15", reqs)
	}
	resolv, _ := os.ReadFile(run.resolv)
	if strings.Contains(string(resolv), "6.6.6.6") || strings.Contains(string(resolv), "search") ||
		!strings.HasSuffix(string(resolv), "\nnameserver 10.7.0.53\n") {
		t.Errorf("resolv.conf:\n%s", resolv)
	}
	if h, _ := os.Hostname(); strings.Contains(h, "evil") {
		t.Errorf("hostname %q", h)
	}
	if l := run.status().Lease; l.Hostname != "" || l.Domain != "" || !slices.Equal(l.DNS, []string{"10.7.0.53"}) {
		t.Errorf("lease %+v", *l)
	}
}

// TestParseDHCP: malformed messages are refused with what is wrong.
func TestParseDHCP(t *testing.T) {
	good := func() []byte {
		b := make([]byte, 240)
		b[0], b[1], b[2] = 2, 1, 6
		binary.BigEndian.PutUint32(b[236:], dhcpCookie)
		return append(b, 53, 1, dhcpAck, 255)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(good()) }
	tests := []struct {
		name string
		msg  []byte
		want string
	}{
		{"short", good()[:239], "shorter than the 240-byte header"},
		{"long", edit(func(b []byte) []byte { return append(b, make([]byte, 1500)...) }), "longer than 1500"},
		{"not ethernet", edit(func(b []byte) []byte { b[1] = 6; return b }), "not Ethernet"},
		{"no cookie", edit(func(b []byte) []byte { b[236] = 0; return b }), "no DHCP magic cookie"},
		{"no type", edit(func(b []byte) []byte { return append(b[:240], 255) }), "no message type"},
		{"option past the end", edit(func(b []byte) []byte { return append(b[:243], 51, 4, 0, 0) }), "option 51 at offset 243 runs past the end"},
		{"length byte missing", edit(func(b []byte) []byte { return append(b[:243], 51) }), "option 51 at offset 243 runs past the end"},
		{"lease time of 3 bytes", edit(func(b []byte) []byte { return append(b[:243], 51, 3, 0, 0, 1, 255) }), "option 51 at offset 243: 3 bytes, want 4"},
		{"router of 6 bytes", edit(func(b []byte) []byte { return append(b[:243], 3, 6, 1, 2, 3, 4, 5, 6, 255) }), "want a multiple of 4"},
		{"holey mask", edit(func(b []byte) []byte { return append(b[:243], 1, 4, 255, 0, 255, 0, 255) }), "not contiguous"},
	}
	for _, tc := range tests {
		if _, err := parseDHCP(tc.msg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if m, err := parseDHCP(good()); err != nil || m.typ != dhcpAck {
		t.Errorf("a good message: %v", err)
	}
}

// TestLeaseTimes: the server's times are brought within bounds.
func TestLeaseTimes(t *testing.T) {
	const s = time.Second
	tests := []struct {
		lease, t1, t2       int64
		duration, want1, w2 time.Duration
	}{
		{3600, -1, -1, 3600 * s, 1800 * s, 3150 * s},
		{3600, 450, 600, 3600 * s, 450 * s, 600 * s},          // an eighth: the shortest taken
		{3600, 449, 3000, 3600 * s, 1800 * s, 3000 * s},       // just under it
		{3600, 1, 2, 3600 * s, 1800 * s, 3150 * s},            // a renewal every second
		{3600, 500, 449, 3600 * s, 500 * s, 3150 * s},         // T2 just under an eighth
		{3600, 900, 800, 3600 * s, 1800 * s, 3150 * s},        // T1 past T2
		{3600, 600, 4000, 3600 * s, 600 * s, 3150 * s},        // T2 past the lease
		{3600, 3500, 4000, 3600 * s, 1800 * s, 3150 * s},      // both wrong
		{-1, -1, -1, time.Hour, 1800 * s, 3150 * s},           // no lease time
		{1, -1, -1, minLease, minLease / 2, minLease / 8 * 7}, // too short
		{0xffffffff, 5, 6, 0, 0, 0},                           // forever
		{0xfffffffe, 0xffffffff, 0, 0xfffffffe * s, 0xfffffffe * s / 2, 0xfffffffe * s / 8 * 7},
	}
	for _, tc := range tests {
		var l Lease
		l.setTimes(tc.lease, tc.t1, tc.t2)
		if l.Duration != tc.duration || l.T1 != tc.want1 || l.T2 != tc.w2 {
			t.Errorf("lease %d T1 %d T2 %d: got %s %s %s, want %s %s %s", tc.lease, tc.t1, tc.t2,
				l.Duration, l.T1, l.T2, tc.duration, tc.want1, tc.w2)
		}
	}
}

// FuzzParseDHCP: no message makes the parser or the lease checks panic,
// and what they accept is within bounds.
func FuzzParseDHCP(f *testing.F) {
	b := make([]byte, 240)
	b[0], b[1], b[2] = 2, 1, 6
	copy(b[16:], []byte{10, 0, 2, 15})
	binary.BigEndian.PutUint32(b[236:], dhcpCookie)
	f.Add(append(b, 53, 1, 5, 54, 4, 10, 0, 2, 2, 51, 4, 0, 1, 81, 128, 6, 8, 10, 0, 2, 3, 10, 0, 2, 4, 12, 3, 'a', 'b', 'c', 255))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseDHCP(data)
		if err != nil {
			return
		}
		l, err := leaseFromAck(m, time.Now())
		if err != nil {
			return
		}
		if !unicast(l.Address.Addr()) || len(l.DNS) > maxLeaseDNS || (l.Hostname != "" && !validHostname(l.Hostname)) ||
			(!l.Infinite() && (l.Duration < minLease || l.T1 <= 0 || l.T1 >= l.T2 || l.T2 >= l.Duration)) {
			t.Errorf("lease out of bounds: %+v", l)
		}
	})
}

// TestLeaseAddressUnicast: an offered address, server or router outside
// what a host may have is refused, at each edge of the ranges: 0/8,
// 127/8, 224/4 and 240/4 (255.255.255.255 among them); the addresses
// just beside them are taken.
func TestLeaseAddressUnicast(t *testing.T) {
	for addr, want := range map[string]bool{
		"0.0.0.0": false, "0.255.255.255": false, "1.0.0.1": true,
		"126.255.255.254": true, "127.0.0.1": false, "127.255.255.254": false, "128.0.0.1": true,
		"223.255.255.254": true, "224.0.0.1": false, "239.255.255.254": false,
		"240.0.0.1": false, "255.255.255.254": false, "255.255.255.255": false,
	} {
		a := netip.MustParseAddr(addr)
		if unicast(a) != want {
			t.Errorf("unicast(%s) = %v, want %v", a, !want, want)
		}
		m := &dhcpMsg{yiaddr: a, maskBits: 32, serverID: netip.MustParseAddr("10.0.2.2")}
		_, err := leaseFromAck(m, time.Now())
		if (err == nil) != want {
			t.Errorf("a lease of %s: %v, want taken %v", a, err, want)
		}
	}
	if unicast(netip.MustParseAddr("::1")) || unicast(netip.MustParseAddr("2001:db8::1")) {
		t.Error("an IPv6 address taken as an IPv4 unicast")
	}
}
