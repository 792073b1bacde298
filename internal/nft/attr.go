package nft

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"

	"berth/internal/rtnl"
)

// attr appends attribute t of value v to m, padded to 4 bytes.
func attr(m []byte, t uint16, v []byte) []byte {
	l := 4 + len(v)
	m = binary.NativeEndian.AppendUint16(m, uint16(l))
	m = binary.NativeEndian.AppendUint16(m, t)
	m = append(m, v...)
	return append(m, make([]byte, align(l)-l)...)
}

// be32 appends a 32-bit attribute: nf_tables wants its numbers in
// network byte order.
func be32(m []byte, t uint16, v uint32) []byte {
	return attr(m, t, binary.BigEndian.AppendUint32(nil, v))
}

// str appends a string attribute, NUL-terminated.
func str(m []byte, t uint16, s string) []byte { return attr(m, t, append([]byte(s), 0)) }

// nest opens a nested attribute t in *m and returns the function that
// closes it.
func nest(m *[]byte, t uint16) func() {
	off := len(*m)
	*m = attr(*m, unix.NLA_F_NESTED|t, nil)
	return func() { binary.NativeEndian.PutUint16((*m)[off:], uint16(len(*m)-off)) }
}

// value is a nested attribute t holding data as NFTA_DATA_VALUE.
func value(m []byte, t uint16, data []byte) []byte {
	return attr(m, unix.NLA_F_NESTED|t, attr(nil, unix.NFTA_DATA_VALUE, data))
}

func align(n int) int { return (n + 3) &^ 3 }

// errMalformed is an answer whose messages do not add up.
var errMalformed = errors.New("malformed answer")

// eachMessage calls fn with each netlink message of b, header included,
// and stops at fn's first error; a message shorter than its header or
// running past b is errMalformed (the padding after the last one may be
// missing).
func eachMessage(b []byte, fn func(m []byte) error) error {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return errMalformed
		}
		if err := fn(b[:l]); err != nil {
			return err
		}
		b = b[min(align(l), len(b)):]
	}
	return nil
}

// extAck returns " (MESSAGE)" of an error answer's extended ack, or "".
func extAck(m []byte) string {
	if msg := rtnl.ExtAckMsg(m); msg != "" {
		return " (" + msg + ")"
	}
	return ""
}
