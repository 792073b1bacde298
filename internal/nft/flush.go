package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// answerTimeout bounds the wait for the kernel's answers: it answers at
// once, but a batch it cut short must not hang PID 1.
const answerTimeout = 10 * time.Second

// ackRoom is the receive buffer an answer may take: an ack without the
// request echoed (NETLINK_CAP_ACK) is 36 bytes, its socket buffer a few
// hundred.
const ackRoom = 1 << 10

// Flush sends the batch as one transaction and waits for the kernel's
// answer to each message. It returns the refusals, each naming its
// message; when one is refused, nothing of the batch is applied. A
// refusal of the whole batch (no CAP_NET_ADMIN, no nf_tables in the
// kernel, a commit that failed) names the batch.
func (b *Batch) Flush() error {
	if len(b.msgs) == 0 {
		return nil
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return fmt.Errorf("nf_tables socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("nf_tables bind: %w", err)
	}
	buf := b.wire()
	// The batch goes in one datagram, and a refusal is one answer per
	// message: room for both, as nft(8) makes it (a table of a thousand
	// published ports is some 300 KB, past the default 208 KB).
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	setBuffer(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, len(buf)+ackRoom)
	setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, (len(b.msgs)+1)*ackRoom)
	for {
		err = unix.Sendto(fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("nf_tables send of %d messages (%d bytes): %w", len(b.msgs), len(buf), err)
	}
	return b.answers(func(rb []byte, timeout time.Duration) (int, error) { return recvKernel(fd, rb, timeout) })
}

// The batch's sequence numbers: BATCH_BEGIN is seqBegin, the messages
// follow it, then BATCH_END. An answer numbered seqBegin is about the
// whole batch.
const seqBegin = 1

// wire is the batch as one datagram: BATCH_BEGIN, the messages, BATCH_END.
func (b *Batch) wire() []byte {
	buf := batchMessage(unix.NFNL_MSG_BATCH_BEGIN, seqBegin)
	for i, m := range b.msgs {
		binary.NativeEndian.PutUint32(m[0:], uint32(len(m)))
		binary.NativeEndian.PutUint32(m[8:], uint32(seqBegin+1+i))
		buf = append(buf, m...)
	}
	return append(buf, batchMessage(unix.NFNL_MSG_BATCH_END, uint32(seqBegin+1+len(b.msgs)))...)
}

// setBuffer raises a socket buffer to size: with force (CAP_NET_ADMIN,
// past the sysctl's maximum), else as far as that maximum allows.
func setBuffer(fd, force, plain, size int) {
	if cur, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, plain); err == nil && cur >= size {
		return
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
	}
}

// batchMessage is NFNL_MSG_BATCH_BEGIN or _END, numbered seq.
func batchMessage(typ uint16, seq uint32) []byte {
	m := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(m[0:], uint32(len(m)))
	binary.NativeEndian.PutUint16(m[4:], typ)
	binary.NativeEndian.PutUint16(m[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(m[8:], seq)
	m[unix.NLMSG_HDRLEN] = unix.AF_UNSPEC
	binary.BigEndian.PutUint16(m[unix.NLMSG_HDRLEN+2:], unix.NFNL_SUBSYS_NFTABLES)
	return m
}

// errTimeout is a receive that waited its whole timeout.
var errTimeout = errors.New("timed out")

// recvKernel reads the kernel's next datagram on fd into rb, waiting at
// most timeout, and returns its length; datagrams from anyone else are
// skipped.
func recvKernel(fd int, rb []byte, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return 0, errTimeout
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, from, err := unix.Recvfrom(fd, rb, 0)
		switch {
		case err == unix.EINTR:
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, errTimeout
		case err != nil:
			return 0, err
		}
		if sa, ok := from.(*unix.SockaddrNetlink); ok && sa.Pid == 0 {
			return n, nil
		}
	}
}

// answers reads the kernel's answer to each message of the batch through
// recv, within answerTimeout in all. An answer about the whole batch is
// the last one that matters: the kernel applied nothing.
func (b *Batch) answers(recv func(rb []byte, timeout time.Duration) (int, error)) error {
	var errs []error
	rb := make([]byte, 64<<10)
	deadline := time.Now().Add(answerTimeout)
	for pending := len(b.msgs); pending > 0; {
		n, err := recv(rb, time.Until(deadline))
		if errors.Is(err, errTimeout) {
			return errors.Join(append(errs, fmt.Errorf("nf_tables: %d of %d answers missing after %s", pending, len(b.msgs), answerTimeout))...)
		}
		if err != nil {
			return fmt.Errorf("nf_tables receive: %w", err)
		}
		var whole error // the batch refused: nothing else matters
		err = eachMessage(rb[:n], func(m []byte) error {
			i := int(binary.NativeEndian.Uint32(m[8:])) - seqBegin - 1 // the message's index
			if binary.NativeEndian.Uint16(m[4:]) != unix.NLMSG_ERROR || len(m) < unix.NLMSG_HDRLEN+4 || i < -1 || i >= len(b.msgs) {
				return nil
			}
			errno := syscall.Errno(-int32(binary.NativeEndian.Uint32(m[unix.NLMSG_HDRLEN:])))
			switch {
			case i == -1 && errno != 0:
				whole = fmt.Errorf("batch refused (%d messages): %w%s", len(b.msgs), errno, extAck(m))
				return whole
			case i >= 0:
				pending--
				if errno != 0 {
					errs = append(errs, fmt.Errorf("%s: %w%s", b.ops[i], errno, extAck(m)))
				}
			}
			return nil
		})
		switch {
		case whole != nil:
			return errors.Join(append(errs, whole)...)
		case err != nil:
			return fmt.Errorf("nf_tables: %w", err)
		}
	}
	return errors.Join(errs...)
}
