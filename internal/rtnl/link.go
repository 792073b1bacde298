package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// rtextFilterSkipStats is RTEXT_FILTER_SKIP_STATS (linux/rtnetlink.h):
// a link's answer without its counters of packets, a few hundred bytes.
const rtextFilterSkipStats = 1 << 3

// Carrier returns whether the link named name has its carrier now
// (IFLA_CARRIER: the driver's word, not the operational state, which the
// kernel updates up to a second later) and how many times it has lost
// it since it was made (IFLA_CARRIER_DOWN_COUNT, Linux 4.16), read
// together: a count that moved between two looks is a carrier lost,
// and maybe found again, in between, however briefly. A kernel that
// does not report both is an error.
func (c *Conn) Carrier(name string) (up bool, downs uint32, err error) {
	op := "get link " + name
	r := newRequest(op, unix.RTM_GETLINK, 0, ifinfo(0, 0, 0)).
		str(unix.IFLA_IFNAME, name).u32(unix.IFLA_EXT_MASK, rtextFilterSkipStats)
	c.seq++
	seq := c.seq
	binary.NativeEndian.PutUint32(r.b[0:], uint32(len(r.b)))
	binary.NativeEndian.PutUint32(r.b[8:], seq)
	if err := c.send(r.b); err != nil {
		return false, 0, err
	}
	var (
		carrier         uint32
		hasUp, hasDowns bool
		acked           bool
		refused         error
	)
	rb := make([]byte, 32<<10)
	for !acked {
		n, err := c.recv(rb)
		if err != nil {
			return false, 0, err
		}
		err = eachMessage(rb[:n], func(m []byte) {
			typ := binary.NativeEndian.Uint16(m[4:])
			switch {
			case binary.NativeEndian.Uint32(m[8:]) != seq:
			case typ == unix.RTM_NEWLINK:
				carrier, hasUp = linkAttr(m, unix.IFLA_CARRIER)
				downs, hasDowns = linkAttr(m, unix.IFLA_CARRIER_DOWN_COUNT)
			case typ == unix.NLMSG_ERROR && len(m) >= unix.NLMSG_HDRLEN+4:
				acked = true
				if e := int32(binary.NativeEndian.Uint32(m[16:])); e != 0 {
					refused = &Error{Op: op, Errno: syscall.Errno(-e), Msg: ExtAckMsg(m)}
				}
			}
		})
		if err != nil {
			return false, 0, err
		}
	}
	switch {
	case refused != nil:
		return false, 0, refused
	case !hasUp || !hasDowns:
		return false, 0, errors.New(op + ": the kernel reports no carrier or no carrier down count")
	}
	return carrier != 0, downs, nil
}

// send writes one datagram of requests to the kernel.
func (c *Conn) send(b []byte) error {
	for {
		err := unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err != unix.EINTR {
			if err != nil {
				return fmt.Errorf("rtnetlink send: %w", err)
			}
			return nil
		}
	}
}

// linkAttr returns attribute t of an RTM_NEWLINK message m (its header
// included), a u8 or a u32, if m has one.
func linkAttr(m []byte, t uint16) (uint32, bool) {
	off := unix.NLMSG_HDRLEN + unix.SizeofIfInfomsg
	for off+4 <= len(m) {
		l := int(binary.NativeEndian.Uint16(m[off:]))
		if l < 4 || off+l > len(m) {
			return 0, false
		}
		if binary.NativeEndian.Uint16(m[off+2:])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER) == t {
			switch l {
			case 5:
				return uint32(m[off+4]), true
			case 8:
				return binary.NativeEndian.Uint32(m[off+4:]), true
			}
			return 0, false
		}
		off += align(l)
	}
	return 0, false
}
