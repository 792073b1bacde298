package board

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The nftables table berth owns, `table ip berth`, written whole in one
// netlink batch by applyRules. In nft's syntax, for the default bridge:
//
//	chain raw_prerouting { type filter hook prerouting priority raw;
//	  iifname "berth0" ip daddr 127.0.0.0/8 drop }
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

// TableName is the nftables table berth owns (family ip).
const TableName = "berth"

// ipsDstNAT is conntrack's IPS_DST_NAT status bit: `ct status dnat`.
const ipsDstNAT = 1 << 5

var berthTable = &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}

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
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.AddTable(berthTable)
	c.DelTable(berthTable)
	t := c.AddTable(berthTable)
	accept := nftables.ChainPolicyAccept
	chain := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio, Policy: &accept})
	}
	raw := chain("raw_prerouting", nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityRaw)
	pre := chain("prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	out := chain("output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	post := chain("postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	fwd := chain("forward", nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter)
	pub := c.AddChain(&nftables.Chain{Name: "publish", Table: t})
	rule := func(ch *nftables.Chain, exprs ...[]expr.Any) {
		var all []expr.Any
		for _, e := range exprs {
			all = append(all, e...)
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: all})
	}
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	drop, acceptV := verdict(expr.VerdictDrop), verdict(expr.VerdictAccept)

	rule(raw, ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, bridge), addrIn(16, loopback), drop)
	local := []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: pub.Name},
	}
	rule(pre, local)
	rule(out, local)
	for _, p := range pubs {
		rule(pub, dnat(p))
	}
	masq := []expr.Any{&expr.Masq{}}
	toBridge := ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, bridge)
	rule(post, addrIn(12, subnet), ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, bridge), masq)
	rule(post, toBridge, addrIn(12, loopback), masq)
	rule(post, toBridge, addrIn(12, subnet), ctBits(expr.CtKeySTATUS, ipsDstNAT), masq)

	rule(fwd, toBridge, ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), acceptV)
	rule(fwd, toBridge, ctBits(expr.CtKeySTATUS, ipsDstNAT), acceptV)
	rule(fwd, toBridge, ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, bridge), acceptV)
	rule(fwd, toBridge, drop)
	if isolate {
		rule(fwd, ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, bridge), ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, bridge), drop)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: table ip %s: %w", TableName, err)
	}
	return nil
}

// removeRules deletes the table, if it is there.
func removeRules() error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	c.AddTable(berthTable)
	c.DelTable(berthTable)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: delete table ip %s: %w", TableName, err)
	}
	return nil
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

// ifname compares the input or output interface's name.
func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: b}}
}

// addrIn matches the IPv4 header's source (offset 12) or destination
// (16) address against p.
func addrIn(offset uint32, p netip.Prefix) []expr.Any {
	mask := binary.BigEndian.AppendUint32(nil, ^uint32(0)<<(32-p.Bits()))
	net := p.Masked().Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net[:]},
	}
}

// ctBits matches a conntrack status or state with any of bits set.
func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: key},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binary.NativeEndian.AppendUint32(nil, bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// dnat is `meta l4proto P th dport PORT dnat to ADDR:TOPORT`.
func dnat(p publish) []expr.Any {
	proto := byte(unix.IPPROTO_TCP)
	if p.Proto == "udp" {
		proto = unix.IPPROTO_UDP
	}
	addr := p.Addr.As4()
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, p.Port)},
		&expr.Immediate{Register: 1, Data: addr[:]},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, p.ToPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}
