// Package nft speaks the part of nf_tables berth needs — one table of
// base chains and rules built from a dozen expressions — on
// golang.org/x/sys/unix alone. A Batch is sent in one sendmsg and applied
// by the kernel as one transaction: all of it or none. It replaced
// google/nftables and its netlink modules (197 KB of berth's arm64
// binary) and writes the same messages; nft_test.go checks each
// expression as nft(8) lists it back.
package nft

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// Families, as nfgenmsg carries them.
const (
	IPv4 = unix.NFPROTO_IPV4
)

// Batch is the messages of one transaction.
type Batch struct {
	msgs [][]byte
	ops  []string // for errors: "add rule berth forward"
}

// message starts a message of type typ (NFT_MSG_*) for family, with the
// nfgenmsg header; attributes are appended to it.
func (b *Batch) message(op string, typ uint16, flags uint16, family byte) *[]byte {
	m := make([]byte, unix.NLMSG_HDRLEN, 256)
	binary.NativeEndian.PutUint16(m[4:], unix.NFNL_SUBSYS_NFTABLES<<8|typ)
	binary.NativeEndian.PutUint16(m[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	m = append(m, family, unix.NFNETLINK_V0, 0, 0)
	b.msgs = append(b.msgs, m)
	b.ops = append(b.ops, op)
	return &b.msgs[len(b.msgs)-1]
}

// AddTable adds table name of family, or leaves it as it is when it is
// there (nft add table).
func (b *Batch) AddTable(family byte, name string) {
	m := b.message("add table "+name, unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE, family)
	*m = str(*m, unix.NFTA_TABLE_NAME, name)
	*m = be32(*m, unix.NFTA_TABLE_FLAGS, 0)
}

// DelTable deletes table name of family, its chains and rules; the
// transaction fails when it is not there.
func (b *Batch) DelTable(family byte, name string) {
	m := b.message("delete table "+name, unix.NFT_MSG_DELTABLE, 0, family)
	*m = str(*m, unix.NFTA_TABLE_NAME, name)
	*m = be32(*m, unix.NFTA_TABLE_FLAGS, 0)
}

// Hook makes a chain a base chain: where packets enter it (NF_INET_*),
// in what order among the chains of that hook, and of what type
// ("filter" or "nat"). Its policy is accept.
type Hook struct {
	Num      uint32
	Priority int32
	Type     string
}

// Verdicts (linux/netfilter.h, nf_tables.h).
const (
	Drop   = 0
	Accept = 1
	Jump   = -3
)

// Standard priorities (nft's raw, dstnat, filter and srcnat).
const (
	PriorityRaw    = -300
	PriorityDstNAT = -100
	PriorityFilter = 0
	PrioritySrcNAT = 100
)

// AddChain adds chain name to table; a base chain when hook is not nil.
func (b *Batch) AddChain(family byte, table, name string, hook *Hook) {
	m := b.message("add chain "+table+" "+name, unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE, family)
	*m = str(*m, unix.NFTA_CHAIN_TABLE, table)
	*m = str(*m, unix.NFTA_CHAIN_NAME, name)
	if hook == nil {
		return
	}
	end := nest(m, unix.NFTA_CHAIN_HOOK)
	*m = be32(*m, unix.NFTA_HOOK_HOOKNUM, hook.Num)
	*m = be32(*m, unix.NFTA_HOOK_PRIORITY, uint32(hook.Priority))
	end()
	*m = be32(*m, unix.NFTA_CHAIN_POLICY, Accept)
	*m = str(*m, unix.NFTA_CHAIN_TYPE, hook.Type)
}

// AddRule appends a rule of exprs to chain of table.
func (b *Batch) AddRule(family byte, table, chain string, exprs ...[]Expr) {
	m := b.message("add rule "+table+" "+chain, unix.NFT_MSG_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_APPEND, family)
	*m = str(*m, unix.NFTA_RULE_TABLE, table)
	*m = str(*m, unix.NFTA_RULE_CHAIN, chain)
	list := nest(m, unix.NFTA_RULE_EXPRESSIONS)
	for _, part := range exprs {
		for _, e := range part {
			elem := nest(m, unix.NFTA_LIST_ELEM)
			*m = str(*m, unix.NFTA_EXPR_NAME, e.name)
			*m = attr(*m, unix.NLA_F_NESTED|unix.NFTA_EXPR_DATA, e.data)
			elem()
		}
	}
	list()
}
