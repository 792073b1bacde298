package nft

import "golang.org/x/sys/unix"

// Expr is one expression of a rule: its name and its attributes.
type Expr struct {
	name string
	data []byte
}

// Registers: nf_tables' four 16-byte data registers are 1 to 4.
const (
	Reg1 = unix.NFT_REG_1
	Reg2 = unix.NFT_REG_2
)

// Meta loads the packet's meta key (NFT_META_*) into reg.
func Meta(key, reg uint32) Expr {
	return Expr{"meta", be32(be32(nil, unix.NFTA_META_KEY, key), unix.NFTA_META_DREG, reg)}
}

// Cmp compares reg with data (op NFT_CMP_*): the rule goes on when it
// holds.
func Cmp(op, reg uint32, data []byte) Expr {
	d := be32(be32(nil, unix.NFTA_CMP_SREG, reg), unix.NFTA_CMP_OP, op)
	return Expr{"cmp", value(d, unix.NFTA_CMP_DATA, data)}
}

// Payload loads n bytes at offset of the packet's header base
// (NFT_PAYLOAD_*_HEADER) into reg.
func Payload(base, offset, n, reg uint32) Expr {
	d := be32(nil, unix.NFTA_PAYLOAD_DREG, reg)
	d = be32(d, unix.NFTA_PAYLOAD_BASE, base)
	d = be32(d, unix.NFTA_PAYLOAD_OFFSET, offset)
	return Expr{"payload", be32(d, unix.NFTA_PAYLOAD_LEN, n)}
}

// And masks the len(mask) bytes of reg with mask.
func And(reg uint32, mask []byte) Expr {
	d := be32(nil, unix.NFTA_BITWISE_SREG, reg)
	d = be32(d, unix.NFTA_BITWISE_DREG, reg)
	d = be32(d, unix.NFTA_BITWISE_LEN, uint32(len(mask)))
	d = value(d, unix.NFTA_BITWISE_MASK, mask)
	return Expr{"bitwise", value(d, unix.NFTA_BITWISE_XOR, make([]byte, len(mask)))}
}

// FibDaddrType loads the type of the packet's destination address in
// the routing table (RTN_*, a host-endian 32-bit number) into reg: `fib
// daddr type`.
func FibDaddrType(reg uint32) Expr {
	d := be32(nil, unix.NFTA_FIB_DREG, reg)
	d = be32(d, unix.NFTA_FIB_FLAGS, unix.NFTA_FIB_F_DADDR)
	return Expr{"fib", be32(d, unix.NFTA_FIB_RESULT, unix.NFT_FIB_RESULT_ADDRTYPE)}
}

// Ct loads the connection's conntrack key (NFT_CT_*) into reg.
func Ct(key, reg uint32) Expr {
	return Expr{"ct", be32(be32(nil, unix.NFTA_CT_KEY, key), unix.NFTA_CT_DREG, reg)}
}

// Verdict ends the rule with code (NF_ACCEPT, NF_DROP, NFT_JUMP …),
// jumping to chain for NFT_JUMP and NFT_GOTO.
func Verdict(code int32, chain string) Expr {
	v := be32(nil, unix.NFTA_VERDICT_CODE, uint32(code))
	if chain != "" {
		v = str(v, unix.NFTA_VERDICT_CHAIN, chain)
	}
	d := be32(nil, unix.NFTA_IMMEDIATE_DREG, unix.NFT_REG_VERDICT)
	return Expr{"immediate", attr(d, unix.NLA_F_NESTED|unix.NFTA_IMMEDIATE_DATA, attr(nil, unix.NLA_F_NESTED|unix.NFTA_DATA_VERDICT, v))}
}

// Immediate loads data into reg.
func Immediate(reg uint32, data []byte) Expr {
	return Expr{"immediate", value(be32(nil, unix.NFTA_IMMEDIATE_DREG, reg), unix.NFTA_IMMEDIATE_DATA, data)}
}

// Masquerade rewrites the source to the outgoing interface's address.
func Masquerade() Expr { return Expr{"masq", nil} }

// DNAT rewrites the destination to the IPv4 address in addrReg and the
// port in portReg.
func DNAT(addrReg, portReg uint32) Expr {
	d := be32(nil, unix.NFTA_NAT_TYPE, unix.NFT_NAT_DNAT)
	d = be32(d, unix.NFTA_NAT_FAMILY, unix.NFPROTO_IPV4)
	d = be32(d, unix.NFTA_NAT_REG_ADDR_MIN, addrReg)
	d = be32(d, unix.NFTA_NAT_REG_PROTO_MIN, portReg)
	return Expr{"nat", be32(d, unix.NFTA_NAT_FLAGS, unix.NF_NAT_RANGE_PROTO_SPECIFIED)}
}
