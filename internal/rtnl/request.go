package rtnl

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Request is one rtnetlink request, built by the functions below and sent
// with Conn.Do.
type Request struct {
	op string // for errors: "add link berth0"
	b  []byte
}

const create = unix.NLM_F_CREATE | unix.NLM_F_EXCL

// newRequest starts a request of typ with its fixed header.
func newRequest(op string, typ, flags uint16, fixed []byte) *Request {
	r := &Request{op: op, b: make([]byte, unix.NLMSG_HDRLEN, 256)}
	binary.NativeEndian.PutUint16(r.b[4:], typ)
	binary.NativeEndian.PutUint16(r.b[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	r.b = append(r.b, fixed...)
	return r
}

func (r *Request) attr(t uint16, v []byte) *Request {
	l := 4 + len(v)
	var h [4]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(l))
	binary.NativeEndian.PutUint16(h[2:], t)
	r.b = append(r.b, h[:]...)
	r.b = append(r.b, v...)
	r.b = append(r.b, make([]byte, align(l)-l)...)
	return r
}

func (r *Request) u32(t uint16, v uint32) *Request {
	return r.attr(t, binary.NativeEndian.AppendUint32(nil, v))
}

func (r *Request) str(t uint16, s string) *Request { return r.attr(t, append([]byte(s), 0)) }

// nest opens a nested attribute and returns the function closing it.
func (r *Request) nest(t uint16) func() {
	off := len(r.b)
	r.attr(t|unix.NLA_F_NESTED, nil)
	return func() { binary.NativeEndian.PutUint16(r.b[off:], uint16(len(r.b)-off)) }
}

// ifinfo is a struct ifinfomsg.
func ifinfo(index int, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(index)))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	return b
}

// AddBridge creates bridge name, up, with hardware address mac. A bridge
// given its address keeps it; one created without (mac nil) takes the
// lowest of its ports' addresses, and so changes as ports come and go.
func AddBridge(name string, mac net.HardwareAddr) *Request {
	r := newRequest("add bridge "+name, unix.RTM_NEWLINK, create, ifinfo(0, unix.IFF_UP, unix.IFF_UP))
	r.str(unix.IFLA_IFNAME, name)
	if mac != nil {
		r.attr(unix.IFLA_ADDRESS, mac)
	}
	end := r.nest(unix.IFLA_LINKINFO)
	r.str(unix.IFLA_INFO_KIND, "bridge")
	end()
	return r
}

// Veth describes a veth pair whose peer is born in another network
// namespace, so no link ever has to be moved (a move waits for an RCU
// grace period: some 25 ms).
type Veth struct {
	// Name is the host end, up and, when Master > 0, a port of that
	// bridge.
	Name   string
	Master int
	// PeerName and PeerMAC (nil: a random one) are the peer's in NetNS,
	// an open /proc/PID/ns/net; its index is the kernel's choice (the
	// kernel takes a peer index only with the host end's). The peer is
	// left down: a peer cannot be up before its pair exists.
	PeerName string
	PeerMAC  net.HardwareAddr
	NetNS    int
}

// AddVeth creates the pair in one request.
func AddVeth(v Veth) *Request {
	r := newRequest("add veth "+v.Name, unix.RTM_NEWLINK, create, ifinfo(0, unix.IFF_UP, unix.IFF_UP))
	r.str(unix.IFLA_IFNAME, v.Name)
	if v.Master > 0 {
		r.u32(unix.IFLA_MASTER, uint32(v.Master))
	}
	endInfo := r.nest(unix.IFLA_LINKINFO)
	r.str(unix.IFLA_INFO_KIND, "veth")
	endData := r.nest(unix.IFLA_INFO_DATA)
	endPeer := r.nest(1) // VETH_INFO_PEER: a struct ifinfomsg, then attributes
	r.b = append(r.b, ifinfo(0, 0, 0)...)
	r.str(unix.IFLA_IFNAME, v.PeerName)
	if v.NetNS > 0 {
		r.u32(unix.IFLA_NET_NS_FD, uint32(v.NetNS))
	}
	if v.PeerMAC != nil {
		r.attr(unix.IFLA_ADDRESS, v.PeerMAC)
	}
	endPeer()
	endData()
	endInfo()
	return r
}

// SetMAC sets link index's hardware address (a bridge then keeps it).
func SetMAC(index int, mac net.HardwareAddr) *Request {
	r := newRequest(fmt.Sprintf("set link %d address %s", index, mac), unix.RTM_NEWLINK, 0, ifinfo(index, 0, 0))
	return r.attr(unix.IFLA_ADDRESS, mac)
}

// AddrMAC is the hardware address berth gives the link that holds IPv4
// address a: 02:62 (locally administered, unicast) and a's four bytes.
// The bridge has its gateway's, each container's eth0 its own. It is
// nil (the kernel's choice) for an address that is not IPv4.
func AddrMAC(a netip.Addr) net.HardwareAddr {
	if !a.Is4() {
		return nil
	}
	b := a.As4()
	return net.HardwareAddr{0x02, 0x62, b[0], b[1], b[2], b[3]}
}

// SetUp brings link index up.
func SetUp(index int) *Request {
	return newRequest(fmt.Sprintf("set link %d up", index), unix.RTM_NEWLINK, 0, ifinfo(index, unix.IFF_UP, unix.IFF_UP))
}

// SetUpName brings link name up: named, not numbered, the link's index
// need not be looked up first.
func SetUpName(name string) *Request {
	return newRequest("set link "+name+" up", unix.RTM_NEWLINK, 0, ifinfo(0, unix.IFF_UP, unix.IFF_UP)).str(unix.IFLA_IFNAME, name)
}

// SetMTU sets link index's MTU.
func SetMTU(index, mtu int) *Request {
	r := newRequest(fmt.Sprintf("set link %d mtu %d", index, mtu), unix.RTM_NEWLINK, 0, ifinfo(index, 0, 0))
	return r.u32(unix.IFLA_MTU, uint32(mtu))
}

// SetHairpin turns hairpin mode on for the bridge port called name, so
// that a container can reach itself through an address the bridge NATs.
// The port is named, not numbered, so that the request can follow the
// AddVeth that creates it in one batch.
func SetHairpin(name string) *Request {
	r := newRequest("set link "+name+" hairpin", unix.RTM_NEWLINK, 0, ifinfo(0, 0, 0))
	endInfo := r.str(unix.IFLA_IFNAME, name).nest(unix.IFLA_LINKINFO)
	endSlave := r.nest(unix.IFLA_INFO_SLAVE_DATA)
	r.attr(unix.IFLA_BRPORT_MODE, []byte{1})
	endSlave()
	endInfo()
	return r
}

// DelLink deletes link name (a veth's peer goes with it).
func DelLink(name string) *Request {
	return newRequest("delete link "+name, unix.RTM_DELLINK, 0, ifinfo(0, 0, 0)).str(unix.IFLA_IFNAME, name)
}

// ifaddr is a struct ifaddrmsg for an IPv4 address.
func ifaddr(index int, bits int) []byte {
	h := []byte{unix.AF_INET, byte(bits), 0, unix.RT_SCOPE_UNIVERSE, 0, 0, 0, 0}
	binary.NativeEndian.PutUint32(h[4:], uint32(int32(index)))
	return h
}

// AddAddr adds IPv4 address p to link index. A lifetime above 0 (a DHCP
// lease) makes the kernel remove the address when it runs out, should
// berth not renew it; 0 is forever. Adding an address it has already
// replaces its lifetime.
func AddAddr(index int, p netip.Prefix, lifetime time.Duration) *Request {
	a := p.Addr().As4()
	r := newRequest(fmt.Sprintf("add address %s to link %d", p, index), unix.RTM_NEWADDR,
		unix.NLM_F_CREATE|unix.NLM_F_REPLACE, ifaddr(index, p.Bits()))
	r.attr(unix.IFA_LOCAL, a[:]).attr(unix.IFA_ADDRESS, a[:])
	if lifetime > 0 {
		secs := uint32(lifetime / time.Second)
		ci := make([]byte, unix.SizeofIfaCacheinfo)
		binary.NativeEndian.PutUint32(ci[0:], secs) // preferred
		binary.NativeEndian.PutUint32(ci[4:], secs) // valid
		r.attr(unix.IFA_CACHEINFO, ci)
	}
	return r
}

// DelAddr removes IPv4 address p from link index.
func DelAddr(index int, p netip.Prefix) *Request {
	a := p.Addr().As4()
	r := newRequest(fmt.Sprintf("delete address %s from link %d", p, index), unix.RTM_DELADDR, 0, ifaddr(index, p.Bits()))
	return r.attr(unix.IFA_LOCAL, a[:])
}

// rtmsg is a struct rtmsg for an IPv4 unicast route in the main table.
func rtmsg(dstBits int) []byte {
	return []byte{unix.AF_INET, byte(dstBits), 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST, 0, 0, 0, 0}
}

// AddDefaultRoute adds (or replaces) the default route via gw on link
// index.
func AddDefaultRoute(index int, gw netip.Addr) *Request {
	g := gw.As4()
	r := newRequest(fmt.Sprintf("add default route via %s", gw), unix.RTM_NEWROUTE,
		unix.NLM_F_CREATE|unix.NLM_F_REPLACE, rtmsg(0))
	return r.attr(unix.RTA_GATEWAY, g[:]).u32(unix.RTA_OIF, uint32(index))
}

// AddDefaultRouteMetric is AddDefaultRoute with a metric (RTA_PRIORITY):
// the kernel takes the route with the lowest, so that each of several
// uplinks can have its own default route without replacing another's.
func AddDefaultRouteMetric(index int, gw netip.Addr, metric int) *Request {
	return AddDefaultRoute(index, gw).u32(unix.RTA_PRIORITY, uint32(metric))
}

// AddDefaultRouteOnLink is AddDefaultRouteMetric for a router outside
// every subnet of the link (a /32 lease's, as cloud DHCP servers give):
// RTNH_F_ONLINK tells the kernel that it is on the link all the same,
// as `ip route add default via GW dev DEV onlink` does.
func AddDefaultRouteOnLink(index int, gw netip.Addr, metric int) *Request {
	g := gw.As4()
	m := rtmsg(0)
	binary.NativeEndian.PutUint32(m[8:], unix.RTNH_F_ONLINK)
	r := newRequest(fmt.Sprintf("add default route via %s (on link)", gw), unix.RTM_NEWROUTE,
		unix.NLM_F_CREATE|unix.NLM_F_REPLACE, m)
	return r.attr(unix.RTA_GATEWAY, g[:]).u32(unix.RTA_OIF, uint32(index)).u32(unix.RTA_PRIORITY, uint32(metric))
}

// DelDefaultRoute removes the default route via gw on link index.
func DelDefaultRoute(index int, gw netip.Addr) *Request {
	g := gw.As4()
	r := newRequest(fmt.Sprintf("delete default route via %s", gw), unix.RTM_DELROUTE, 0, rtmsg(0))
	return r.attr(unix.RTA_GATEWAY, g[:]).u32(unix.RTA_OIF, uint32(index))
}
