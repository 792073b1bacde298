package board

import (
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

// forgetPortFlows deletes the UDP entries to the host ports of ports,
// once a container publishes them.
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
	n.forgetFlows(func(f nft.Flow) bool { return f.Proto == unix.IPPROTO_UDP && udp[f.OrigDst.Port()] })
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
