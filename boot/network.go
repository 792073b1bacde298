package boot

import (
	"fmt"
	"net"
	"net/netip"

	"berth/board"
)

// setupNetwork is the network phase: as PID 1 it brings loopback up and
// starts configuring each [[network.interface]] in the background — NIC
// drivers, link, static address or DHCP lease (board.StartUplink) — so
// that the phase takes no longer than one netlink request. On a
// development host berth boot leaves the host's network alone.
func (b *booter) setupNetwork() error {
	ifaces := b.cfg.Network.uplinks()
	if !b.opts.PID1 {
		if len(ifaces) > 0 {
			b.log.Printf("network: [[network.interface]] not applied: berth boot leaves this host's network alone")
		}
		return nil
	}
	u, err := board.StartUplink(board.UplinkConfig{
		Interfaces: ifaces, Hostname: b.cfg.Hostname, LoadDrivers: len(ifaces) > 0,
		Logf: b.log.Printf, Debugf: b.log.Debugf, Changed: b.networkChanged,
		Bridge: b.cfg.Network.bridgePrefix(),
	})
	if err != nil {
		b.log.Printf("warning: network: %v", err)
		return nil
	}
	b.uplink = u
	b.log.Printf("network: lo up; %d interfaces configured in the background", len(ifaces))
	return nil
}

// networkChanged wakes the supervisor loop: a container may be waiting
// for the network. It never blocks.
func (b *booter) networkChanged() {
	select {
	case b.netChanged <- struct{}{}:
	default:
	}
}

// networkWait is why a container with needs_network cannot start yet, or
// "" when it can: an uplink has its address and a default route. Under
// berth boot the host's network is taken as it is.
func (s *supervisor) networkWait(u *unit) string {
	if !u.cfg.NeedsNetwork || s.b.uplink == nil {
		return ""
	}
	if ok, why := s.b.uplink.Ready(); !ok {
		return fmt.Sprintf("waiting for the network (%s)", why)
	}
	return ""
}

// uplinks converts the validated [[network.interface]] tables.
func (n NetworkConfig) uplinks() []board.Interface {
	var out []board.Interface
	for _, ic := range n.Interface {
		bi := board.Interface{Name: ic.Name, DHCP: ic.DHCP}
		if ic.MTU != nil {
			bi.MTU = *ic.MTU
		}
		bi.MAC, _ = net.ParseMAC(ic.MAC)
		if ic.Address != "" {
			bi.Address, _ = parseHostPrefix(ic.Address)
		}
		if ic.Gateway != "" {
			bi.Gateway, _ = netip.ParseAddr(ic.Gateway)
		}
		for _, d := range ic.DNS {
			if a, err := netip.ParseAddr(d); err == nil {
				bi.DNS = append(bi.DNS, a.Unmap())
			}
		}
		out = append(out, bi)
	}
	return out
}
