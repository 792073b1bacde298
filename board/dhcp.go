package board

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The DHCPv4 client (RFC 2131): INIT → SELECTING → REQUESTING → BOUND →
// RENEWING at T1 (unicast to the server) → REBINDING at T2 (broadcast to
// any server) → INIT when the lease runs out; a NAK is INIT at once. It
// talks through a UDP socket on port 68 bound to its interface
// (SO_BINDTODEVICE) and asks for broadcast replies until it has an
// address, so it needs no packet socket.

// Retransmission (RFC 2131 4.1): 4 s doubling to 64 s, each ±1 s; a
// REQUEST for an offer is sent at most requestTries times.
const (
	firstRetransmit = 4 * time.Second
	maxRetransmit   = 64 * time.Second
	requestTries    = 4
	// minExtendWait is the shortest wait between renewal (or rebinding)
	// requests while there is time left (RFC 2131 4.4.5: 60 s).
	minExtendWait = 60 * time.Second
	// maxIgnoredLogged bounds the log lines about ignored messages per
	// exchange.
	maxIgnoredLogged = 4
)

var (
	errStopped  = errors.New("stopped")
	errNoAnswer = errors.New("no answer")
	ipv4Bcast   = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	errNAK      = errors.New("the server refused (DHCPNAK)")
	errLinkGone = errors.New("the interface is gone")
)

// leaseHandler applies what the client learns.
type leaseHandler interface {
	// setState reports a state change: "selecting", "bound"...
	setState(s string)
	// bound applies a new or extended lease; old is the one it replaces
	// (nil for a new one).
	bound(l, old *Lease)
	// lost removes a lease that ended.
	lost(l *Lease, why string)
	logf(format string, args ...any)
	debugf(format string, args ...any)
}

// dhcpClient runs DHCPv4 on one interface.
type dhcpClient struct {
	ifname   string
	mac      [6]byte
	hostname string // sent as option 12 when set
	conn     *net.UDPConn
	h        leaseHandler
	stop     <-chan struct{}
	xid      uint32
	started  time.Time // of the current exchange, for the secs field
	ignored  int       // messages ignored in the current exchange
	buf      []byte
}

// newDHCPClient opens the client's socket on ifname: UDP port 68, bound
// to the device, allowed to broadcast.
func newDHCPClient(ifname string, mac net.HardwareAddr, h leaseHandler, stop <-chan struct{}) (*dhcpClient, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("dhcp on %s: hardware address %s is not Ethernet", ifname, mac)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
			}
			if serr == nil {
				serr = unix.BindToDevice(int(fd), ifname)
			}
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:68")
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: socket: %w", ifname, err)
	}
	c := &dhcpClient{ifname: ifname, conn: pc.(*net.UDPConn), h: h, stop: stop, buf: make([]byte, dhcpMaxMsg+1)}
	copy(c.mac[:], mac)
	return c, nil
}

// close closes the socket, which ends a run in progress.
func (c *dhcpClient) close() { c.conn.Close() }

// run keeps a lease until stop is closed or the socket fails.
func (c *dhcpClient) run() error {
	fails := 0
	for {
		l, err := c.acquire()
		if err != nil {
			if errors.Is(err, errStopped) || errors.Is(err, errLinkGone) {
				return err
			}
			fails++
			wait := min(time.Second<<min(fails-1, 6), maxRetransmit)
			c.h.logf("%s: DHCP: %v; starting again in %s", c.ifname, err, wait)
			if !c.sleep(wait) {
				return errStopped
			}
			continue
		}
		fails = 0
		c.h.bound(l, nil)
		for l != nil && err == nil {
			l, err = c.keep(l)
		}
		if err != nil {
			return err
		}
	}
}

// acquire is INIT, SELECTING and REQUESTING: DISCOVER, the first good
// OFFER, REQUEST, ACK.
func (c *dhcpClient) acquire() (*Lease, error) {
	if err := c.waitCarrier(); err != nil {
		return nil, err
	}
	c.h.setState("selecting")
	c.begin()
	offer, err := c.exchange(c.out(dhcpDiscover, netip.Addr{}, netip.Addr{}, netip.Addr{}), ipv4Bcast,
		backoff(0), func(m *dhcpMsg) bool { return m.typ == dhcpOffer && c.validLease(m) })
	if err != nil {
		return nil, err
	}
	server := offer.serverID
	c.h.debugf("%s: DHCP offer %s from %s", c.ifname, offer.yiaddr, server)
	c.h.setState("requesting")
	start := time.Now()
	ack, err := c.exchange(c.out(dhcpRequest, netip.Addr{}, offer.yiaddr, server), ipv4Bcast,
		backoff(requestTries), func(m *dhcpMsg) bool {
			if m.serverID != server {
				return false
			}
			return m.typ == dhcpNak || m.typ == dhcpAck && m.yiaddr == offer.yiaddr && c.validLease(m)
		})
	switch {
	case err != nil:
		return nil, fmt.Errorf("requesting %s from %s: %w", offer.yiaddr, server, err)
	case ack.typ == dhcpNak:
		return nil, fmt.Errorf("requesting %s from %s: %w%s", offer.yiaddr, server, errNAK, quoted(ack.message))
	}
	return leaseFromAck(ack, start)
}

// keep holds l: BOUND until T1, RENEWING until T2, REBINDING until the
// lease ends. It returns the extended lease, or nil once it is lost. A
// link that lost its carrier and got it back meanwhile (a cable moved to
// another network, say) has its lease checked at once (verify), an
// infinite one too.
func (c *dhcpClient) keep(l *Lease) (*Lease, error) {
	// The state is bound's own ("bound", or why it is not applied).
	switch replugged, err := c.waitBound(l); {
	case errors.Is(err, errLinkGone):
		c.h.lost(l, err.Error())
		return nil, err
	case err != nil:
		return nil, err
	case replugged:
		return c.verify(l)
	}
	for _, phase := range []struct {
		state string
		dst   netip.Addr
		until time.Time
	}{{"renewing", l.Server, l.RebindAt()}, {"rebinding", ipv4Bcast, l.Expiry()}} {
		c.h.setState(phase.state)
		c.begin()
		start := time.Now()
		m, err := c.exchange(c.out(dhcpRequest, l.Address.Addr(), netip.Addr{}, netip.Addr{}), phase.dst,
			untilDeadline(phase.until), func(m *dhcpMsg) bool { return c.extends(l, m, phase.dst == l.Server) })
		if errors.Is(err, errNoAnswer) {
			continue
		}
		return c.settle(l, m, err, start, phase.state)
	}
	c.h.lost(l, "it expired")
	return nil, nil
}

// settle applies to l the outcome of an exchange about it begun at
// start, in state: an ACK (m) extends it; a NAK, or a failure (err),
// loses it, saying so for state; shutting down leaves it as it is.
func (c *dhcpClient) settle(l *Lease, m *dhcpMsg, err error, start time.Time, state string) (*Lease, error) {
	switch {
	case errors.Is(err, errStopped):
		return nil, err
	case err != nil:
		c.h.lost(l, fmt.Sprintf("%s: %v", state, err))
		return nil, err
	case m.typ == dhcpNak:
		c.h.lost(l, fmt.Sprintf("%s: %v%s", state, errNAK, quoted(m.message)))
		return nil, nil
	}
	nl, err := leaseFromAck(m, start)
	if err != nil { // validLease accepted it: cannot happen
		return nil, err
	}
	c.h.bound(nl, l)
	return nl, nil
}

// extends reports whether m answers the request that extends l: a NAK,
// or an ACK of l's address with a usable lease. While renewing (unicast
// to the server, fromServer) only l's server may answer; while
// rebinding any server may (RFC 2131 4.4.5).
func (c *dhcpClient) extends(l *Lease, m *dhcpMsg, fromServer bool) bool {
	if m.typ != dhcpNak && m.typ != dhcpAck {
		return false
	}
	if fromServer && m.serverID != l.Server {
		c.ignore("a %s from %s while renewing with %s", msgName(m.typ), m.serverID, l.Server)
		return false
	}
	if m.typ == dhcpAck && m.yiaddr != l.Address.Addr() {
		c.ignore("an ACK of %s to the request to extend %s", m.yiaddr, l.Address.Addr())
		return false
	}
	return m.typ == dhcpNak || c.validLease(m)
}

// validLease reports whether an OFFER or ACK carries a usable lease; a
// server without a server identifier cannot be asked again.
func (c *dhcpClient) validLease(m *dhcpMsg) bool {
	if !unicast(m.serverID) {
		c.ignore("a %s without a valid server identifier", msgName(m.typ))
		return false
	}
	if _, err := leaseFromAck(m, time.Now()); err != nil {
		c.ignore("a %s: %v", msgName(m.typ), err)
		return false
	}
	return true
}

// schedule says how long to wait for an answer after send number n (from
// 0), and false when it is time to give up.
type schedule func(n int) (time.Duration, bool)

// backoff is RFC 2131's retransmission: 4 s doubling up to 64 s, ±1 s;
// tries > 0 gives up after that many sends.
func backoff(tries int) schedule {
	return func(n int) (time.Duration, bool) {
		if tries > 0 && n >= tries {
			return 0, false
		}
		d := min(firstRetransmit<<min(n, 4), maxRetransmit)
		return d + time.Duration(rand.Int64N(int64(2*time.Second))) - time.Second, true
	}
}

// untilDeadline waits half the time left, at least minExtendWait, and
// gives up at end.
func untilDeadline(end time.Time) schedule {
	return func(int) (time.Duration, bool) {
		left := time.Until(end)
		if left < time.Millisecond {
			return 0, false
		}
		return min(max(left/2, minExtendWait), left), true
	}
}

// begin starts an exchange: a new transaction ID, kept for its
// retransmissions so that a late answer to an earlier one still counts.
func (c *dhcpClient) begin() {
	c.xid, c.started, c.ignored = rand.Uint32(), time.Now(), 0
}

// out builds a message of the current exchange.
func (c *dhcpClient) out(typ byte, ciaddr, requested, server netip.Addr) dhcpOut {
	return dhcpOut{typ: typ, xid: c.xid, mac: c.mac, ciaddr: ciaddr, requested: requested, server: server, hostname: c.hostname}
}

// exchange sends o to dst and waits for a message accept takes,
// resending on sched.
func (c *dhcpClient) exchange(o dhcpOut, dst netip.Addr, sched schedule, accept func(*dhcpMsg) bool) (*dhcpMsg, error) {
	to := netip.AddrPortFrom(dst, 67)
	for n := 0; ; n++ {
		wait, ok := sched(n)
		if !ok {
			return nil, errNoAnswer
		}
		o.secs = uint16(min(time.Since(c.started)/time.Second, 0xffff))
		if _, err := c.conn.WriteToUDPAddrPort(o.encode(), to); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, errStopped
			}
			if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO) {
				return nil, errLinkGone
			}
			c.h.debugf("%s: DHCP send to %s: %v", c.ifname, dst, err)
		}
		m, err := c.receive(time.Now().Add(wait), accept)
		if m != nil || err != nil {
			return m, err
		}
	}
}

// receive reads messages until accept takes one or deadline passes (nil,
// nil). Messages of other transactions, for other clients, or malformed
// are ignored.
func (c *dhcpClient) receive(deadline time.Time, accept func(*dhcpMsg) bool) (*dhcpMsg, error) {
	for {
		if err := c.conn.SetReadDeadline(deadline); err != nil {
			return nil, errStopped
		}
		n, from, err := c.conn.ReadFromUDPAddrPort(c.buf)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return nil, nil
		case errors.Is(err, net.ErrClosed):
			return nil, errStopped
		case err != nil: // the link going down, say: look again shortly
			c.ignore("a failed read: %v", err)
			if !c.sleep(100 * time.Millisecond) {
				return nil, errStopped
			}
			continue
		case n > dhcpMaxMsg:
			c.ignore("a message from %s longer than %d bytes", from, dhcpMaxMsg)
			continue
		}
		m, err := parseDHCP(c.buf[:n])
		switch {
		case err != nil:
			c.ignore("a malformed message from %s: %v", from, err)
		case m.op != 2 || m.xid != c.xid || m.chaddr != c.mac:
			c.ignore("a message from %s of another transaction or client", from)
		case accept(m):
			return m, nil
		default:
			c.ignore("a %s from %s", msgName(m.typ), from)
		}
	}
}

// ignore logs an ignored message, a few per exchange.
func (c *dhcpClient) ignore(format string, args ...any) {
	c.ignored++
	if c.ignored <= maxIgnoredLogged {
		c.h.debugf("%s: DHCP: ignored "+format, append([]any{c.ifname}, args...)...)
	}
}

// sleep waits d, or until stop: false then.
func (c *dhcpClient) sleep(d time.Duration) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.stop:
		return false
	}
}

func msgName(t byte) string {
	names := map[byte]string{dhcpDiscover: "DHCPDISCOVER", dhcpOffer: "DHCPOFFER", dhcpRequest: "DHCPREQUEST", 4: "DHCPDECLINE",
		dhcpAck: "DHCPACK", dhcpNak: "DHCPNAK", 7: "DHCPRELEASE", 8: "DHCPINFORM"}
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprintf("DHCP message of type %d", t)
}

// quoted renders a server's message for an error, if it sent one.
func quoted(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf(" (%q)", s)
}
