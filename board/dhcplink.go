package board

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/rtnl"
)

// The DHCP client's view of its link: its carrier, looked at through the
// client's own socket, and what a replug does to a bound lease (RFC 2131
// 3.2: INIT-REBOOT).

// waitCarrier waits until the link can carry packets, so that the first
// DISCOVER is not lost to a cable still negotiating. A link just brought
// up gets its carrier within about a second: it looks every 100 ms for
// the first 2 s, then every 2 s.
func (c *dhcpClient) waitCarrier() error {
	for start := time.Now(); ; {
		carrier, err := c.hasCarrier()
		if err != nil || carrier {
			return err
		}
		c.h.setState("no carrier")
		wait := 100 * time.Millisecond
		if time.Since(start) > 2*time.Second {
			wait = 2 * time.Second
		}
		if !c.sleep(wait) {
			return errStopped
		}
	}
}

// hasCarrier reports whether the link can carry packets (IFF_RUNNING),
// asked of the kernel through the client's own socket: one ioctl, no
// dump of every link. A link of that name no longer there (removed, or
// renamed: the socket is bound to the one it had) is errLinkGone.
func (c *dhcpClient) hasCarrier() (bool, error) {
	rc, err := c.conn.SyscallConn()
	if err != nil {
		return false, errStopped
	}
	ifr, err := unix.NewIfreq(c.ifname)
	if err != nil {
		return false, fmt.Errorf("dhcp on %s: %w", c.ifname, err)
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { ierr = unix.IoctlIfreq(int(fd), unix.SIOCGIFFLAGS, ifr) }); err != nil {
		return false, errStopped // the socket is closed
	}
	switch {
	case errors.Is(ierr, unix.ENODEV):
		return false, errLinkGone
	case ierr != nil:
		return false, nil // cannot tell: not yet
	}
	return ifr.Uint16()&unix.IFF_RUNNING != 0, nil
}

// carrierPoll is how often a bound client looks at its link's carrier.
const carrierPoll = 2 * time.Second

// waitBound waits until l's T1 (for ever for an infinite lease), looking
// at the link's carrier every carrierPoll: replugged once it has been
// seen lost and then back, or seen back with more carrier losses counted
// by the kernel than when it began (a cable pulled and plugged in again
// between two looks). The carrier and the count are read together from
// the kernel (rtnl.Carrier); where it cannot tell, the link's flags
// (hasCarrier) say whether it carries. A carrier lost at T1 is waited
// for until the lease ends: renewing over a link that carries nothing
// is pointless. The error is errStopped, or errLinkGone.
func (c *dhcpClient) waitBound(l *Lease) (replugged bool, err error) {
	nl, nlErr := rtnl.Dial()
	if nlErr == nil {
		defer nl.Close()
	}
	_, downs, counted := c.carrier(nl)
	lost := false
	for {
		var until time.Time // none: for ever
		switch {
		case !l.Infinite() && lost:
			until = l.Expiry()
		case !l.Infinite():
			until = l.RenewAt()
		}
		if !until.IsZero() && !time.Now().Before(until) {
			return false, nil
		}
		wait := carrierPoll
		if !until.IsZero() {
			wait = min(wait, time.Until(until))
		}
		if !c.sleep(wait) {
			return false, errStopped
		}
		carrier, err := c.hasCarrier()
		up, now, ok := c.carrier(nl)
		if ok {
			carrier = up
		}
		flapped := counted && ok && now != downs
		switch {
		case err != nil:
			return false, err
		case !carrier && !lost:
			lost = true
			c.h.setState("bound, no carrier")
		case carrier && lost:
			return true, nil
		case carrier && flapped:
			c.h.debugf("%s: the carrier was lost and came back between two looks (%d losses counted, %d before)", c.ifname, now, downs)
			return true, nil
		}
	}
}

// carrier is whether the link has its carrier and how many times it
// has lost it, as the kernel says (rtnl.Carrier); ok is false when it
// cannot tell.
func (c *dhcpClient) carrier(nl *rtnl.Conn) (up bool, downs uint32, ok bool) {
	if nl == nil {
		return false, 0, false
	}
	up, downs, err := nl.Carrier(c.ifname)
	return up, downs, err == nil
}

// verify asks, once the link is back, whether l still holds on the
// network the link is on now (RFC 2131 3.2, INIT-REBOOT): a broadcast
// REQUEST for its address that names no server, retransmitted until a
// server answers or the lease ends (for ever for an infinite lease: a
// server that does not know the network, a switch port still learning,
// says nothing). A NAK loses the lease at once, and the client starts
// over; an ACK extends it. The lease is used meanwhile, as the RFC allows.
func (c *dhcpClient) verify(l *Lease) (*Lease, error) {
	c.h.setState("rebooting")
	c.begin()
	start := time.Now()
	addr := l.Address.Addr()
	sched := backoff(0)
	if !l.Infinite() {
		sched = untilExpiry(sched, l.Expiry())
	}
	m, err := c.exchange(c.out(dhcpRequest, netip.Addr{}, addr, netip.Addr{}), ipv4Bcast,
		sched, func(m *dhcpMsg) bool {
			return m.typ == dhcpNak || m.typ == dhcpAck && m.yiaddr == addr && c.validLease(m)
		})
	if errors.Is(err, errNoAnswer) {
		c.h.lost(l, "it expired: no server answered since the link came back")
		return nil, nil
	}
	return c.settle(l, m, err, start, "the link came back")
}

// untilExpiry is sched, its waits cut at end, given up at end.
func untilExpiry(sched schedule, end time.Time) schedule {
	return func(n int) (time.Duration, bool) {
		left := time.Until(end)
		wait, ok := sched(n)
		if !ok || left < time.Millisecond {
			return 0, false
		}
		return min(wait, left), true
	}
}
