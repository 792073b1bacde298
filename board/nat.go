package board

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"berth/internal/nft"
)

// The nftables table berth owns, `table ip berth`, written whole in one
// netlink batch by applyRules. In nft's syntax, for the default bridge:
//
//	chain raw_prerouting { type filter hook prerouting priority raw;
//	  iifname "berth0" ip daddr 127.0.0.0/8 drop
//	  iifname "berth0" ip saddr != 10.88.0.0/16 drop }
//	chain prerouting { type nat hook prerouting priority dstnat;
//	  fib daddr type local jump publish }
//	chain output { type nat hook output priority dstnat;
//	  fib daddr type local jump publish }
//	chain publish { tcp dport 8080 dnat to 10.88.0.2:80 ... }
//	chain postrouting { type nat hook postrouting priority srcnat;
//	  ip saddr 10.88.0.0/16 oifname != "berth0" masquerade
//	  oifname "berth0" ip saddr 127.0.0.0/8 masquerade
//	  oifname "berth0" ip saddr 10.88.0.0/16 ct status dnat masquerade }
//	chain forward { type filter hook forward priority filter;
//	  oifname "berth0" ct state established,related accept
//	  oifname "berth0" ct status dnat accept
//	  oifname "berth0" iifname "berth0" accept
//	  oifname "berth0" drop
//	  iifname != "berth0" oifname != "berth0" drop }
//
// The last rule is there when berth turned ip_forward on for the bridge
// (it was off): the appliance then forwards for its containers only,
// and does not become a router between its uplinks, or between a LAN and
// a container's uplink. Where forwarding was on already, or [network]
// router says the appliance routes (bridgeState.Routes), the host's own
// routing is left as it is.
// Published ports answer on every local address (fib daddr type local):
// the uplinks', the bridge's and, from the appliance itself, 127.0.0.1
// (which needs route_localnet on the bridge; the raw drop keeps containers
// from using it to reach the appliance's loopback-only services, the
// CVE-2020-8558 class). Egress is masqueraded behind the uplink; traffic
// that arrives for the bridge from outside passes only when it was
// published (ct status dnat) or answers a container's own connection.
// A container's packets must come from the bridge's subnet: one with
// CAP_NET_RAW (not in berth's default set, unlike Docker's; given by cap_add) would otherwise send the
// appliance, and through it an uplink, packets from any address it
// chose, whatever the host's rp_filter says.

// TableName is the nftables table berth owns (family ip).
const TableName = "berth"

// ipsDstNAT is conntrack's IPS_DST_NAT status bit: `ct status dnat`.
const ipsDstNAT = 1 << 5

// publish is one DNAT rule: Port on any local address to Addr:ToPort.
type publish struct {
	Proto  string // "tcp" or "udp"
	Port   uint16
	Addr   netip.Addr
	ToPort uint16
}

// applyRules replaces the table with the rules for bridge, its subnet
// and pubs, atomically: add (so that the delete cannot fail), delete, add.
// With isolate, forwarding that does not touch the bridge is dropped.
func applyRules(bridge string, subnet netip.Prefix, pubs []publish, isolate bool) error {
	if err := rulesBatch(bridge, subnet, pubs, isolate).Flush(); err != nil {
		return fmt.Errorf("nftables: table ip %s: %w", TableName, err)
	}
	return nil
}

// rulesBatch is the transaction applyRules sends.
func rulesBatch(bridge string, subnet netip.Prefix, pubs []publish, isolate bool) *nft.Batch {
	b := &nft.Batch{}
	b.AddTable(nft.IPv4, TableName)
	b.DelTable(nft.IPv4, TableName)
	b.AddTable(nft.IPv4, TableName)
	chain := func(name string, hook *nft.Hook) string {
		b.AddChain(nft.IPv4, TableName, name, hook)
		return name
	}
	raw := chain("raw_prerouting", &nft.Hook{Num: unix.NF_INET_PRE_ROUTING, Priority: nft.PriorityRaw, Type: "filter"})
	pre := chain("prerouting", &nft.Hook{Num: unix.NF_INET_PRE_ROUTING, Priority: nft.PriorityDstNAT, Type: "nat"})
	out := chain("output", &nft.Hook{Num: unix.NF_INET_LOCAL_OUT, Priority: nft.PriorityDstNAT, Type: "nat"})
	post := chain("postrouting", &nft.Hook{Num: unix.NF_INET_POST_ROUTING, Priority: nft.PrioritySrcNAT, Type: "nat"})
	fwd := chain("forward", &nft.Hook{Num: unix.NF_INET_FORWARD, Priority: nft.PriorityFilter, Type: "filter"})
	pub := chain("publish", nil)
	rule := func(ch string, exprs ...[]nft.Expr) { b.AddRule(nft.IPv4, TableName, ch, exprs...) }
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	drop, accept := verdict(nft.Drop), verdict(nft.Accept)

	rule(raw, ifname(unix.NFT_META_IIFNAME, unix.NFT_CMP_EQ, bridge), addrIn(16, loopback), drop)
	rule(raw, ifname(unix.NFT_META_IIFNAME, unix.NFT_CMP_EQ, bridge), addrCmp(12, subnet, unix.NFT_CMP_NEQ), drop)
	local := []nft.Expr{
		nft.FibDaddrType(nft.Reg1),
		nft.Cmp(unix.NFT_CMP_EQ, nft.Reg1, binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)),
		nft.Verdict(nft.Jump, pub),
	}
	rule(pre, local)
	rule(out, local)
	for _, p := range pubs {
		rule(pub, dnat(p))
	}
	masq := []nft.Expr{nft.Masquerade()}
	toBridge := ifname(unix.NFT_META_OIFNAME, unix.NFT_CMP_EQ, bridge)
	rule(post, addrIn(12, subnet), ifname(unix.NFT_META_OIFNAME, unix.NFT_CMP_NEQ, bridge), masq)
	rule(post, toBridge, addrIn(12, loopback), masq)
	rule(post, toBridge, addrIn(12, subnet), ctBits(unix.NFT_CT_STATUS, ipsDstNAT), masq)

	rule(fwd, toBridge, ctBits(unix.NFT_CT_STATE, ctEstablished|ctRelated), accept)
	rule(fwd, toBridge, ctBits(unix.NFT_CT_STATUS, ipsDstNAT), accept)
	rule(fwd, toBridge, ifname(unix.NFT_META_IIFNAME, unix.NFT_CMP_EQ, bridge), accept)
	rule(fwd, toBridge, drop)
	if isolate {
		rule(fwd, ifname(unix.NFT_META_IIFNAME, unix.NFT_CMP_NEQ, bridge), ifname(unix.NFT_META_OIFNAME, unix.NFT_CMP_NEQ, bridge), drop)
	}
	return b
}

// conntrack's state bits as ct state loads them (NF_CT_STATE_BIT).
const (
	ctEstablished = 1 << 1
	ctRelated     = 1 << 2
)

// removeRules deletes the table, if it is there.
func removeRules() error {
	b := &nft.Batch{}
	b.AddTable(nft.IPv4, TableName)
	b.DelTable(nft.IPv4, TableName)
	if err := b.Flush(); err != nil {
		return fmt.Errorf("nftables: delete table ip %s: %w", TableName, err)
	}
	return nil
}

func verdict(code int32) []nft.Expr { return []nft.Expr{nft.Verdict(code, "")} }

// ifname matches the input or output interface's name (key) with op.
func ifname(key, op uint32, name string) []nft.Expr {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []nft.Expr{nft.Meta(key, nft.Reg1), nft.Cmp(op, nft.Reg1, b)}
}

// addrIn matches the IPv4 header's source (offset 12) or destination
// (16) address against p.
func addrIn(offset uint32, p netip.Prefix) []nft.Expr {
	return addrCmp(offset, p, unix.NFT_CMP_EQ)
}

// addrCmp compares the address at offset, masked to p's bits, with p's
// network address by op: in p (NFT_CMP_EQ) or not (NFT_CMP_NEQ).
func addrCmp(offset uint32, p netip.Prefix, op uint32) []nft.Expr {
	mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
	net := p.Masked().Addr().As4()
	return []nft.Expr{
		nft.Payload(unix.NFT_PAYLOAD_NETWORK_HEADER, offset, 4, nft.Reg1),
		nft.And(nft.Reg1, mask),
		nft.Cmp(op, nft.Reg1, net[:]),
	}
}

// ctBits matches a conntrack status or state with any of bits set.
func ctBits(key, bits uint32) []nft.Expr {
	return []nft.Expr{
		nft.Ct(key, nft.Reg1),
		nft.And(nft.Reg1, binary.NativeEndian.AppendUint32(nil, bits)),
		nft.Cmp(unix.NFT_CMP_NEQ, nft.Reg1, make([]byte, 4)),
	}
}

// dnat is `meta l4proto P th dport PORT dnat to ADDR:TOPORT`.
func dnat(p publish) []nft.Expr {
	proto := byte(unix.IPPROTO_TCP)
	if p.Proto == "udp" {
		proto = unix.IPPROTO_UDP
	}
	addr := p.Addr.As4()
	return []nft.Expr{
		nft.Meta(unix.NFT_META_L4PROTO, nft.Reg1),
		nft.Cmp(unix.NFT_CMP_EQ, nft.Reg1, []byte{proto}),
		nft.Payload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, nft.Reg1),
		nft.Cmp(unix.NFT_CMP_EQ, nft.Reg1, binary.BigEndian.AppendUint16(nil, p.Port)),
		nft.Immediate(nft.Reg1, addr[:]),
		nft.Immediate(nft.Reg2, binary.BigEndian.AppendUint16(nil, p.ToPort)),
		nft.DNAT(nft.Reg1, nft.Reg2),
	}
}
