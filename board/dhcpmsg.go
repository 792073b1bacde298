package board

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// DHCP message types (option 53), RFC 2131.
const (
	dhcpDiscover = 1
	dhcpOffer    = 2
	dhcpRequest  = 3
	dhcpAck      = 5
	dhcpNak      = 6
)

// Limits on what a DHCP server controls.
const (
	// dhcpMaxMsg is the longest message berth reads, and announces with
	// option 57: a full Ethernet frame's IP datagram.
	dhcpMaxMsg = 1500
	// dhcpHeader is the fixed BOOTP part with the magic cookie.
	dhcpHeader = 240
	// maxLeaseDNS bounds the DNS servers taken from a lease.
	maxLeaseDNS = 8
	// minLease is the shortest lease berth keeps to: a server's 0 or 1 s
	// would have it renew in a tight loop.
	minLease = 10 * time.Second
	// defaultLease stands in for a lease time the server did not give.
	defaultLease = time.Hour
	// infiniteLease is the lease time meaning "forever" (RFC 2131 3.3).
	infiniteLease = 0xffffffff
)

const dhcpCookie = 0x63825363

// dhcpMsg is what berth reads of a DHCP message. Options that are absent
// are zero (addresses invalid, times -1).
type dhcpMsg struct {
	op            byte
	xid           uint32
	chaddr        [6]byte
	yiaddr        netip.Addr
	typ           byte
	serverID      netip.Addr
	maskBits      int // -1: no subnet mask option
	routers       []netip.Addr
	dns           []netip.Addr
	hostname      string
	domain        string
	lease, t1, t2 int64 // seconds
	message       string
}

// parseDHCP reads a DHCP message, refusing one that is malformed: short,
// long, not Ethernet, without the magic cookie or a message type, with an
// option running past the end or of the wrong size.
func parseDHCP(b []byte) (*dhcpMsg, error) {
	switch {
	case len(b) < dhcpHeader:
		return nil, fmt.Errorf("%d bytes, shorter than the %d-byte header", len(b), dhcpHeader)
	case len(b) > dhcpMaxMsg:
		return nil, fmt.Errorf("%d bytes, longer than %d", len(b), dhcpMaxMsg)
	case b[1] != 1 || b[2] != 6:
		return nil, fmt.Errorf("hardware type %d length %d, not Ethernet", b[1], b[2])
	case binary.BigEndian.Uint32(b[236:]) != dhcpCookie:
		return nil, errors.New("no DHCP magic cookie")
	}
	m := &dhcpMsg{
		op: b[0], xid: binary.BigEndian.Uint32(b[4:]),
		yiaddr:   netip.AddrFrom4([4]byte(b[16:20])),
		maskBits: -1, lease: -1, t1: -1, t2: -1,
	}
	copy(m.chaddr[:], b[28:34])
	seen := map[byte]bool{}
	for i := dhcpHeader; i < len(b); {
		code := b[i]
		if code == 255 {
			break
		}
		if code == 0 {
			i++
			continue
		}
		if i+1 >= len(b) || i+2+int(b[i+1]) > len(b) {
			return nil, fmt.Errorf("option %d at offset %d runs past the end of the message", code, i)
		}
		v := b[i+2 : i+2+int(b[i+1])]
		i += 2 + len(v)
		if seen[code] && code != 6 {
			continue // the first of a repeated option counts; DNS servers add up
		}
		seen[code] = true
		if err := m.option(code, v); err != nil {
			return nil, fmt.Errorf("option %d at offset %d: %w", code, i-2-len(v), err)
		}
	}
	if m.typ == 0 {
		return nil, errors.New("no message type (option 53)")
	}
	return m, nil
}

// option reads one option's value into m.
func (m *dhcpMsg) option(code byte, v []byte) error {
	want := func(n int) error {
		if len(v) != n {
			return fmt.Errorf("%d bytes, want %d", len(v), n)
		}
		return nil
	}
	addrs := func() ([]netip.Addr, error) {
		if len(v) == 0 || len(v)%4 != 0 {
			return nil, fmt.Errorf("%d bytes, want a multiple of 4", len(v))
		}
		var out []netip.Addr
		for ; len(v) > 0; v = v[4:] {
			out = append(out, netip.AddrFrom4([4]byte(v[:4])))
		}
		return out, nil
	}
	u32 := func(dst *int64) error {
		if err := want(4); err != nil {
			return err
		}
		*dst = int64(binary.BigEndian.Uint32(v))
		return nil
	}
	switch code {
	case 53:
		if err := want(1); err != nil {
			return err
		}
		m.typ = v[0]
	case 54:
		if err := want(4); err != nil {
			return err
		}
		m.serverID = netip.AddrFrom4([4]byte(v))
	case 1:
		if err := want(4); err != nil {
			return err
		}
		mask := binary.BigEndian.Uint32(v)
		if n := bits.LeadingZeros32(^mask); mask<<n == 0 {
			m.maskBits = n
		} else {
			return fmt.Errorf("subnet mask %s is not contiguous", netip.AddrFrom4([4]byte(v)))
		}
	case 3:
		a, err := addrs()
		m.routers = a
		return err
	case 6:
		a, err := addrs()
		m.dns = append(m.dns, a...)
		return err
	case 12:
		m.hostname = string(v)
	case 15:
		m.domain = string(v)
	case 51:
		return u32(&m.lease)
	case 58:
		return u32(&m.t1)
	case 59:
		return u32(&m.t2)
	case 56:
		m.message = printable(string(v))
	}
	return nil
}

// dhcpOut is a message the client sends.
type dhcpOut struct {
	typ       byte
	xid       uint32
	secs      uint16
	mac       [6]byte
	ciaddr    netip.Addr // renewing and rebinding: the address held
	requested netip.Addr // option 50, when selecting
	server    netip.Addr // option 54, when selecting
	hostname  string     // option 12, when the config names the appliance
}

// encode builds the BOOTREQUEST. Without an address to receive unicast
// on, it asks for broadcast replies (flag 0x8000).
func (o dhcpOut) encode() []byte {
	p := make([]byte, dhcpHeader, 320)
	p[0], p[1], p[2] = 1, 1, 6 // BOOTREQUEST, Ethernet, 6-byte address
	binary.BigEndian.PutUint32(p[4:], o.xid)
	binary.BigEndian.PutUint16(p[8:], o.secs)
	if o.ciaddr.IsValid() {
		a := o.ciaddr.As4()
		copy(p[12:16], a[:])
	} else {
		binary.BigEndian.PutUint16(p[10:], 0x8000)
	}
	copy(p[28:34], o.mac[:])
	binary.BigEndian.PutUint32(p[236:], dhcpCookie)
	p = append(p, 53, 1, o.typ)
	p = append(p, 61, 7, 1) // client identifier: the MAC address
	p = append(p, o.mac[:]...)
	for _, a := range []struct {
		code byte
		addr netip.Addr
	}{{50, o.requested}, {54, o.server}} {
		if a.addr.IsValid() {
			v := a.addr.As4()
			p = append(p, a.code, 4, v[0], v[1], v[2], v[3])
		}
	}
	if o.hostname != "" && len(o.hostname) <= 255 {
		p = append(p, 12, byte(len(o.hostname)))
		p = append(p, o.hostname...)
	}
	p = append(p, 57, 2, dhcpMaxMsg>>8, dhcpMaxMsg&0xff)
	// Parameter request list: mask, router, DNS, hostname, domain,
	// lease time, server, T1, T2.
	p = append(p, 55, 9, 1, 3, 6, 12, 15, 51, 54, 58, 59)
	return append(p, 255)
}

// Lease is a DHCPv4 lease as berth holds it.
type Lease struct {
	Address  netip.Prefix
	Router   netip.Addr   // invalid when the server names none
	DNS      []netip.Addr // at most maxLeaseDNS
	Hostname string       // checked to be a host name, else ""
	Domain   string       // likewise
	Server   netip.Addr
	// Duration is the lease time; 0 means forever. T1 and T2 are when
	// to renew (with the server) and rebind (with any server).
	Duration, T1, T2 time.Duration
	// Start is when the request that won the lease was sent: the lease
	// runs from then (RFC 2131 4.4.1). It holds a monotonic reading, so
	// a clock step does not move the lease.
	Start time.Time
}

// Infinite reports whether the lease never ends.
func (l *Lease) Infinite() bool { return l.Duration == 0 }

// Expiry, RenewAt and RebindAt are the lease's end, T1 and T2.
func (l *Lease) Expiry() time.Time   { return l.Start.Add(l.Duration) }
func (l *Lease) RenewAt() time.Time  { return l.Start.Add(l.T1) }
func (l *Lease) RebindAt() time.Time { return l.Start.Add(l.T2) }

// leaseFromAck makes the lease of an ACK (or the offer of an OFFER),
// checking every value the server chose and bringing its times within
// bounds.
func leaseFromAck(m *dhcpMsg, start time.Time) (*Lease, error) {
	a := m.yiaddr
	if !unicast(a) {
		return nil, fmt.Errorf("offered address %s is not a unicast address", a)
	}
	bits := m.maskBits
	if bits < 0 {
		bits = classfulBits(a)
	}
	if bits < 1 || bits > 32 {
		return nil, fmt.Errorf("prefix length /%d for %s", bits, a)
	}
	p := netip.PrefixFrom(a, bits)
	if bits <= 30 && (a == p.Masked().Addr() || a == lastAddr(p)) {
		return nil, fmt.Errorf("offered address %s is the subnet's own or broadcast address", p)
	}
	l := &Lease{Address: p, Server: m.serverID, Start: start}
	for _, r := range m.routers {
		if usableRouter(r, p) {
			l.Router = r
			break
		}
	}
	for _, d := range m.dns {
		if unicast(d) && len(l.DNS) < maxLeaseDNS && !slices.Contains(l.DNS, d) {
			l.DNS = append(l.DNS, d)
		}
	}
	if validHostname(m.hostname) {
		l.Hostname = m.hostname
	}
	if validHostname(m.domain) {
		l.Domain = m.domain
	}
	l.setTimes(m.lease, m.t1, m.t2)
	return l, nil
}

// setTimes applies the server's lease time, T1 and T2 (seconds, -1 when
// absent): no lease time is an hour, 0xffffffff forever, anything shorter
// than minLease is minLease; T1 and T2 that are missing, not in order
// (0 < T1 < T2 < lease) or shorter than an eighth of the lease (a server
// asking for a renewal every second of an hour's lease) are the RFC's
// defaults, 1/2 and 7/8.
func (l *Lease) setTimes(lease, t1, t2 int64) {
	switch {
	case lease == infiniteLease:
		return // Duration 0: forever
	case lease < 0:
		l.Duration = defaultLease
	default:
		l.Duration = max(time.Duration(lease)*time.Second, minLease)
	}
	l.T1, l.T2 = time.Duration(t1)*time.Second, time.Duration(t2)*time.Second
	short := l.Duration / 8
	if t2 < 0 || l.T2 < short || l.T2 >= l.Duration {
		l.T2 = l.Duration / 8 * 7
	}
	if t1 < 0 || l.T1 < short || l.T1 >= l.T2 {
		l.T1 = l.Duration / 2
	}
	if l.T1 >= l.T2 {
		l.T1, l.T2 = l.Duration/2, l.Duration*7/8
	}
}

// unicast reports whether a is an IPv4 address a host can have: not in
// 0.0.0.0/8 ("this network", a source only), 127.0.0.0/8 (loopback),
// 224.0.0.0/4 (multicast) or 240.0.0.0/4 (reserved, and the limited
// broadcast address), all of which the kernel would take.
func unicast(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	first := a.As4()[0]
	return first != 0 && first != 127 && first < 224
}

// usableRouter is whether r can be the lease's default gateway: a
// unicast address other than the lease's own and, within the lease's
// subnet, neither its network nor its broadcast address (the kernel
// refuses a route via those: "Nexthop has invalid gateway"). A router
// outside the subnet is routed on-link, as the lease's route says.
func usableRouter(r netip.Addr, lease netip.Prefix) bool {
	if !unicast(r) || r == lease.Addr() {
		return false
	}
	return lease.Bits() > 30 || !lease.Contains(r) || (r != lease.Masked().Addr() && r != lastAddr(lease))
}

// classfulBits is the prefix length of a's class, for a lease without a
// subnet mask.
func classfulBits(a netip.Addr) int {
	switch b := a.As4()[0]; {
	case b < 128:
		return 8
	case b < 192:
		return 16
	}
	return 24
}

// lastAddr is the broadcast address of p's subnet.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (uint32(1)<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// validHostname reports whether s is a host or domain name: labels of
// 1-63 letters, digits and '-', not starting or ending with '-', at most
// 64 bytes in all (the kernel's limit for a hostname). Anything else a
// server sends is dropped, never written to a file.
func validHostname(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// printable keeps a server's text to printable ASCII, for a log line.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
