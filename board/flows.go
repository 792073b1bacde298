package board

import (
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"berth/internal/nft"
)

// Conntrack entries a published port leaves stale. A UDP client that
// keeps sending from one port keeps its conntrack entry alive, and the
// entry keeps the address it was made for: none, if the client began
// before the port was published (its packets never reach the container
// that publishes it now), or a container that has gone, whose address the
// next container given it would receive them at. Docker deletes the same
// entries. TCP needs nothing: a client's next connection is a new entry.

// forgetPortFlows deletes the UDP entries to the host ports of ports on
// the appliance's own addresses, once a container publishes them: the
// packets the publishing rule sends on (nat.go: fib daddr type local).
// A flow to that port number elsewhere — the appliance's or a
// container's DNS to a server on port 53 — is not the port's, and stays.
func (n *Network) forgetPortFlows(ports []Port) {
	udp := map[uint16]bool{}
	for _, p := range ports {
		if p.Proto == "udp" {
			udp[p.Host] = true
		}
	}
	if len(udp) == 0 {
		return
	}
	local := localAddrs()
	n.forgetFlows(func(f nft.Flow) bool {
		return f.Proto == unix.IPPROTO_UDP && udp[f.OrigDst.Port()] && local(f.OrigDst.Addr())
	})
}

// localAddrs reports whether an address is one of the appliance's (in
// this network namespace), loopback included.
func localAddrs() func(netip.Addr) bool {
	own := map[netip.Addr]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				own[p.Addr().Unmap()] = true
			}
		}
	}
	return func(a netip.Addr) bool { return a.IsLoopback() || own[a] }
}

// forgetAddrFlows deletes the entries to and from a container's address
// once it has ended: those to its published ports among them.
func (n *Network) forgetAddrFlows(addr netip.Addr) {
	if !addr.IsValid() {
		return
	}
	n.forgetFlows(func(f nft.Flow) bool { return f.OrigSrc.Addr() == addr || f.ReplySrc.Addr() == addr })
}

func (n *Network) forgetFlows(match func(nft.Flow) bool) {
	if _, err := nft.DeleteFlows(match); err != nil {
		n.warn("bridge: %v", err)
	}
}
