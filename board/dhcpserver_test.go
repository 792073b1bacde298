package board

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// A DHCP server for the tests, written apart from the client's code: it
// parses what it needs of a request and builds its answers byte by byte,
// so that each test decides exactly what the client gets — late, wrong
// or hostile answers included.

// seenRequest is a message the test server received.
type seenRequest struct {
	typ       byte
	xid       uint32
	chaddr    []byte
	ciaddr    netip.Addr
	requested netip.Addr // option 50
	server    netip.Addr // option 54
	broadcast bool       // sent to 255.255.255.255
	flags     uint16     // the BOOTP flags: 0x8000 asks for a broadcast reply
}

// testServer answers on srv0 as each test's answer function says.
type testServer struct {
	t      *testing.T
	conn   *ipv4.PacketConn
	mu     sync.Mutex
	seen   []seenRequest
	answer func(s *testServer, r seenRequest)
	done   chan struct{}
}

// startServer runs a DHCP server on srv0 in the peer namespace.
func startServer(t *testing.T, peer *os.File, answer func(s *testServer, r seenRequest)) *testServer {
	t.Helper()
	var pc net.PacketConn
	var err error
	inNS(t, peer, func() {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			return rc.Control(func(fd uintptr) {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
				_ = unix.BindToDevice(int(fd), "srv0")
			})
		}}
		pc, err = lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:67")
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, conn: ipv4.NewPacketConn(pc), answer: answer, done: make(chan struct{})}
	if err := s.conn.SetControlMessage(ipv4.FlagDst, true); err != nil {
		t.Fatal(err)
	}
	go s.serve()
	t.Cleanup(func() { pc.Close(); <-s.done })
	return s
}

func (s *testServer) serve() {
	defer close(s.done)
	buf := make([]byte, 2048)
	for {
		n, cm, _, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		r, ok := parseRequest(buf[:n])
		if !ok {
			s.t.Errorf("the test server got a malformed request: % x", buf[:n])
			continue
		}
		r.broadcast = cm != nil && cm.Dst.Equal(net.IPv4bcast)
		s.mu.Lock()
		s.seen = append(s.seen, r)
		answer := s.answer
		s.mu.Unlock()
		answer(s, r)
	}
}

// requests returns what the server has received so far.
func (s *testServer) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.seen...)
}

// parseRequest reads the fields of a BOOTREQUEST the tests look at.
func parseRequest(b []byte) (seenRequest, bool) {
	if len(b) < 240 || b[0] != 1 || binary.BigEndian.Uint32(b[236:]) != 0x63825363 {
		return seenRequest{}, false
	}
	r := seenRequest{xid: binary.BigEndian.Uint32(b[4:]), chaddr: append([]byte(nil), b[28:34]...),
		ciaddr: netip.AddrFrom4([4]byte(b[12:16])), flags: binary.BigEndian.Uint16(b[10:])}
	if r.ciaddr.IsUnspecified() {
		r.ciaddr = netip.Addr{}
	}
	for o := b[240:]; len(o) >= 2 && o[0] != 255; o = o[2+int(o[1]):] {
		if len(o) < 2+int(o[1]) {
			return r, false
		}
		v := o[2 : 2+int(o[1])]
		switch {
		case o[0] == 53 && len(v) == 1:
			r.typ = v[0]
		case o[0] == 50 && len(v) == 4:
			r.requested = netip.AddrFrom4([4]byte(v))
		case o[0] == 54 && len(v) == 4:
			r.server = netip.AddrFrom4([4]byte(v))
		}
	}
	return r, r.typ != 0
}

// reply is an answer; the zero values of its fields take the request's
// (xid, chaddr) or leave the option out. Times are seconds, -1 for none.
type reply struct {
	typ        byte
	op         byte // 0: BOOTREPLY
	xid        uint32
	chaddr     []byte
	yiaddr     netip.Addr
	noServerID bool
	serverID   netip.Addr // default serverAddr
	mask       []byte     // default 255.255.255.0
	router     netip.Addr
	routers    []netip.Addr // more routers, after router
	dns        []netip.Addr
	hostname   string
	domain     string
	message    string
	lease      int64
	t1, t2     int64
	extra      []byte // more option bytes, before the end option
	noEnd      bool   // no end option: the message ends with extra
	padTo      int    // pad the message to this size
}

// ack is an OFFER or ACK of addr with a lease of secs and the test LAN's
// router and DNS server.
func ack(typ byte, addr string, secs, t1, t2 int64) reply {
	return reply{typ: typ, yiaddr: netip.MustParseAddr(addr), lease: secs, t1: t1, t2: t2,
		router: serverAddr, dns: []netip.Addr{netip.MustParseAddr("10.7.0.53")}}
}

// nak is a DHCPNAK.
func nak() reply { return reply{typ: dhcpNak, lease: -1, t1: -1, t2: -1, message: "wrong network"} }

// send answers r with rep: to its address when it has one (renewing),
// else broadcast.
func (s *testServer) send(r seenRequest, rep reply) {
	b := make([]byte, 240, 600)
	b[0], b[1], b[2] = 2, 1, 6
	if rep.op != 0 {
		b[0] = rep.op
	}
	xid := r.xid
	if rep.xid != 0 {
		xid = rep.xid
	}
	binary.BigEndian.PutUint32(b[4:], xid)
	if rep.yiaddr.IsValid() {
		copy(b[16:20], rep.yiaddr.AsSlice())
	}
	chaddr := r.chaddr
	if rep.chaddr != nil {
		chaddr = rep.chaddr
	}
	copy(b[28:34], chaddr)
	binary.BigEndian.PutUint32(b[236:], 0x63825363)
	opt := func(code byte, v []byte) { b = append(append(b, code, byte(len(v))), v...) }
	u32 := func(v int64) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
	opt(53, []byte{rep.typ})
	switch {
	case rep.serverID.IsValid():
		opt(54, rep.serverID.AsSlice())
	case !rep.noServerID:
		opt(54, serverAddr.AsSlice())
	}
	if rep.typ != dhcpNak {
		mask := rep.mask
		if mask == nil {
			mask = []byte{255, 255, 255, 0}
		}
		opt(1, mask)
	}
	if rep.router.IsValid() {
		var rs []byte
		for _, r := range append([]netip.Addr{rep.router}, rep.routers...) {
			rs = append(rs, r.AsSlice()...)
		}
		opt(3, rs)
	}
	var dns []byte
	for _, d := range rep.dns {
		dns = append(dns, d.AsSlice()...)
	}
	if len(dns) > 0 {
		opt(6, dns)
	}
	for _, o := range []struct {
		code byte
		v    string
	}{{12, rep.hostname}, {15, rep.domain}, {56, rep.message}} {
		if o.v != "" {
			opt(o.code, []byte(o.v))
		}
	}
	for _, o := range []struct {
		code byte
		v    int64
	}{{51, rep.lease}, {58, rep.t1}, {59, rep.t2}} {
		if o.v >= 0 {
			opt(o.code, u32(o.v))
		}
	}
	b = append(b, rep.extra...)
	if !rep.noEnd {
		b = append(b, 255)
	}
	for len(b) < rep.padTo {
		b = append(b, 0)
	}
	dst := net.IPv4bcast
	if r.ciaddr.IsValid() && !r.broadcast {
		dst = r.ciaddr.AsSlice()
	}
	if _, err := s.conn.WriteTo(b, nil, &net.UDPAddr{IP: dst, Port: 68}); err != nil && !errors.Is(err, net.ErrClosed) {
		s.t.Errorf("test server: send to %s: %v", dst, err)
	}
}

// normalServer answers every DISCOVER with an offer of addr and every
// REQUEST with an ACK, with the given lease times.
func normalServer(addr string, secs, t1, t2 int64) func(s *testServer, r seenRequest) {
	return func(s *testServer, r seenRequest) {
		switch r.typ {
		case dhcpDiscover:
			s.send(r, ack(dhcpOffer, addr, secs, t1, t2))
		case dhcpRequest:
			s.send(r, ack(dhcpAck, addr, secs, t1, t2))
		}
	}
}
