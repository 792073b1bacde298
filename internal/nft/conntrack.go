package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Conntrack entries, through ctnetlink: another subsystem of the same
// netfilter netlink family. berth deletes the entries a published port's
// change leaves stale: a UDP client that keeps sending from one port
// keeps its entry alive, and with it the address the entry was made for
// (none, before the port was published; a container that has gone,
// after), so its packets would never reach the container that publishes
// the port now, or would reach whichever container got the old address.

// ctnetlink message types and attributes (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctMsgGet    = 1
	ctMsgDelete = 2

	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaTupleIP    = 1
	ctaTupleProto = 2
	ctaIPv4Src    = 1
	ctaIPv4Dst    = 2
	ctaProtoNum   = 1
	ctaProtoSrc   = 2
	ctaProtoDst   = 3

	nlaTypeMask = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

// Flow is an IPv4 conntrack entry: its protocol and its two tuples.
type Flow struct {
	Proto              uint8
	OrigSrc, OrigDst   netip.AddrPort
	ReplySrc, ReplyDst netip.AddrPort
	orig               []byte // the CTA_TUPLE_ORIG attribute as the kernel sent it
}

// DeleteFlows deletes the IPv4 conntrack entries match picks and returns
// how many it deleted (one that went meanwhile is not counted). One dump
// of the whole table, then a request for each entry picked. A kernel
// without conntrack, or without its netlink part, has none to delete.
func DeleteFlows(match func(Flow) bool) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return 0, fmt.Errorf("conntrack socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("conntrack bind: %w", err)
	}
	rb := make([]byte, 64<<10) // the dump's batches; an ack is 36 bytes
	var picked []Flow
	err = dumpFlows(fd, rb, func(f Flow) {
		if match(f) {
			f.orig = append([]byte(nil), f.orig...) // it was rb's
			picked = append(picked, f)
		}
	})
	// Without conntrack, or its netlink part (nf_conntrack_netlink, which
	// the kernel asks for as "nfnetlink-subsys-1"), the kernel answers
	// EINVAL (or one of the others): it tracks nothing berth could
	// delete, or berth cannot see it; either way there is nothing to do.
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPROTONOSUPPORT) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("conntrack dump: %w", err)
	}
	deleted := 0
	for i, f := range picked {
		err := ctRequest(fd, rb, ctMsgDelete, unix.NLM_F_ACK, uint32(2+i), f.orig, nil)
		switch {
		case err == nil:
			deleted++
		case !errors.Is(err, unix.ENOENT):
			return deleted, fmt.Errorf("conntrack delete %s %s -> %s: %w", protoName(f.Proto), f.OrigSrc, f.OrigDst, err)
		}
	}
	return deleted, nil
}

// dumpFlows asks for every IPv4 entry and calls each with it, read into
// rb: a Flow's tuple is rb's until each returns.
func dumpFlows(fd int, rb []byte, each func(Flow)) error {
	return ctRequest(fd, rb, ctMsgGet, unix.NLM_F_DUMP, 1, nil, func(m []byte) {
		if f, ok := parseFlow(m); ok {
			each(f)
		}
	})
}

// ctRequest sends one ctnetlink request of typ with attrs and reads the
// kernel's answers into rb up to the end of a dump or the ack, each
// message's payload to msg. It returns the kernel's refusal.
func ctRequest(fd int, rb []byte, typ, flags uint16, seq uint32, attrs []byte, msg func([]byte)) error {
	m := make([]byte, unix.NLMSG_HDRLEN+4, unix.NLMSG_HDRLEN+4+len(attrs))
	binary.NativeEndian.PutUint16(m[4:], unix.NFNL_SUBSYS_CTNETLINK<<8|typ)
	binary.NativeEndian.PutUint16(m[6:], unix.NLM_F_REQUEST|flags)
	binary.NativeEndian.PutUint32(m[8:], seq)
	m[unix.NLMSG_HDRLEN] = unix.AF_INET
	m = append(m, attrs...)
	binary.NativeEndian.PutUint32(m[0:], uint32(len(m)))
	if err := unix.Sendto(fd, m, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	deadline := time.Now().Add(answerTimeout)
	for {
		n, err := recvKernel(fd, rb, time.Until(deadline))
		if err != nil {
			return err
		}
		done := false
		err = eachMessage(rb[:n], func(m []byte) error {
			t, s, body := binary.NativeEndian.Uint16(m[4:]), binary.NativeEndian.Uint32(m[8:]), m[unix.NLMSG_HDRLEN:]
			switch {
			case s != seq || done:
			case t == unix.NLMSG_DONE:
				done = true
			case t == unix.NLMSG_ERROR:
				if len(body) < 4 {
					return errMalformed
				}
				done = true
				if e := int32(binary.NativeEndian.Uint32(body)); e != 0 {
					return unix.Errno(-e)
				}
			case msg != nil && len(body) >= 4:
				msg(body[4:]) // past the nfgenmsg
			}
			return nil
		})
		if err != nil || done {
			return err
		}
	}
}

// parseFlow reads an entry's tuples; ok is false for one it cannot read
// (not IPv4).
func parseFlow(attrs []byte) (f Flow, ok bool) {
	var origOK, replyOK bool
	eachAttr(attrs, func(t uint16, v, raw []byte) {
		switch t {
		case ctaTupleOrig:
			f.Proto, f.OrigSrc, f.OrigDst, origOK = parseTuple(v)
			f.orig = raw
		case ctaTupleReply:
			_, f.ReplySrc, f.ReplyDst, replyOK = parseTuple(v)
		}
	})
	return f, origOK && replyOK
}

// parseTuple reads a CTA_TUPLE_* attribute's addresses and ports.
func parseTuple(b []byte) (proto uint8, src, dst netip.AddrPort, ok bool) {
	var sa, da netip.Addr
	var sp, dp uint16
	eachAttr(b, func(t uint16, v, _ []byte) {
		switch t {
		case ctaTupleIP:
			eachAttr(v, func(t uint16, v, _ []byte) {
				if len(v) == 4 && t == ctaIPv4Src {
					sa = netip.AddrFrom4([4]byte(v))
				} else if len(v) == 4 && t == ctaIPv4Dst {
					da = netip.AddrFrom4([4]byte(v))
				}
			})
		case ctaTupleProto:
			eachAttr(v, func(t uint16, v, _ []byte) {
				switch {
				case t == ctaProtoNum && len(v) >= 1:
					proto = v[0]
				case t == ctaProtoSrc && len(v) >= 2:
					sp = binary.BigEndian.Uint16(v)
				case t == ctaProtoDst && len(v) >= 2:
					dp = binary.BigEndian.Uint16(v)
				}
			})
		}
	})
	return proto, netip.AddrPortFrom(sa, sp), netip.AddrPortFrom(da, dp), sa.IsValid() && da.IsValid()
}

// eachAttr calls fn with each netlink attribute of b: its type, its
// value, and the whole attribute, header and padding included.
func eachAttr(b []byte, fn func(t uint16, v, raw []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		if l < 4 || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:])&nlaTypeMask, b[4:l], b[:l])
		b = b[min(align(l), len(b)):]
	}
}

func protoName(p uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	}
	return fmt.Sprintf("protocol %d", p)
}
