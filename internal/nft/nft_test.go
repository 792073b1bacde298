package nft

import (
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"berth/internal/testutil"
)

// list is what nft(8) says of table t: the kernel's reading of the
// messages, in nft's own words.
func list(t *testing.T, table string) (string, error) {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "ip", table).CombinedOutput()
	return string(out), err
}

// TestBatchAsNftListsIt writes a table with every expression berth uses
// and checks it reads back, through nft(8), as the rules meant.
func TestBatchAsNftListsIt(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, "br9")
	b := &Batch{}
	b.AddTable(IPv4, "t")
	b.AddChain(IPv4, "t", "pre", &Hook{Num: unix.NF_INET_PRE_ROUTING, Priority: PriorityDstNAT, Type: "nat"})
	b.AddChain(IPv4, "t", "post", &Hook{Num: unix.NF_INET_POST_ROUTING, Priority: PrioritySrcNAT, Type: "nat"})
	b.AddChain(IPv4, "t", "fwd", &Hook{Num: unix.NF_INET_FORWARD, Priority: PriorityFilter, Type: "filter"})
	b.AddChain(IPv4, "t", "raw", &Hook{Num: unix.NF_INET_PRE_ROUTING, Priority: PriorityRaw, Type: "filter"})
	b.AddChain(IPv4, "t", "pub", nil)
	b.AddRule(IPv4, "t", "pre", []Expr{
		FibDaddrType(Reg1),
		Cmp(unix.NFT_CMP_EQ, Reg1, binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)),
		Verdict(Jump, "pub"),
	})
	b.AddRule(IPv4, "t", "pub", []Expr{
		Meta(unix.NFT_META_L4PROTO, Reg1),
		Cmp(unix.NFT_CMP_EQ, Reg1, []byte{unix.IPPROTO_TCP}),
		Payload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, Reg1),
		Cmp(unix.NFT_CMP_EQ, Reg1, []byte{0x1f, 0x90}),
		Immediate(Reg1, []byte{10, 88, 0, 2}),
		Immediate(Reg2, []byte{0, 80}),
		DNAT(Reg1, Reg2),
	})
	b.AddRule(IPv4, "t", "post", []Expr{
		Payload(unix.NFT_PAYLOAD_NETWORK_HEADER, 12, 4, Reg1),
		And(Reg1, []byte{255, 255, 0, 0}),
		Cmp(unix.NFT_CMP_EQ, Reg1, []byte{10, 88, 0, 0}),
		Meta(unix.NFT_META_OIFNAME, Reg1),
		Cmp(unix.NFT_CMP_NEQ, Reg1, name),
		Masquerade(),
	})
	b.AddRule(IPv4, "t", "fwd", []Expr{
		Ct(unix.NFT_CT_STATE, Reg1),
		And(Reg1, binary.NativeEndian.AppendUint32(nil, 1<<1|1<<2)),
		Cmp(unix.NFT_CMP_NEQ, Reg1, make([]byte, 4)),
		Verdict(Accept, ""),
	})
	b.AddRule(IPv4, "t", "raw", []Expr{Meta(unix.NFT_META_IIFNAME, Reg1), Cmp(unix.NFT_CMP_EQ, Reg1, name)}, []Expr{Verdict(Drop, "")})
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := list(t, "t")
	if err != nil {
		t.Fatalf("nft list: %v\n%s", err, got)
	}
	for _, want := range []string{
		"type nat hook prerouting priority dstnat; policy accept;",
		"type nat hook postrouting priority srcnat; policy accept;",
		"type filter hook forward priority filter; policy accept;",
		"type filter hook prerouting priority raw; policy accept;",
		"fib daddr type local jump pub",
		"tcp dport 8080 dnat to 10.88.0.2:80",
		`ip saddr 10.88.0.0/16 oifname != "br9" masquerade`,
		"ct state established,related accept",
		`iifname "br9" drop`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("nft lists no %q:\n%s", want, got)
		}
	}
}

// TestBatchAllOrNothing: a batch with a refused message changes nothing,
// and the error names that message and the kernel's reason.
func TestBatchAllOrNothing(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	b := &Batch{}
	b.AddTable(IPv4, "kept")
	b.DelTable(IPv4, "missing")
	err := b.Flush()
	if !errors.Is(err, unix.ENOENT) || !strings.Contains(err.Error(), "delete table missing") {
		t.Errorf("Flush = %v; want ENOENT naming delete table missing", err)
	}
	if out, err := list(t, "kept"); err == nil {
		t.Errorf("the table of a refused batch is there:\n%s", out)
	}
	// Add, delete, add: what applyRules sends, whether or not the table
	// is there.
	for range 2 {
		b := &Batch{}
		b.AddTable(IPv4, "kept")
		b.DelTable(IPv4, "kept")
		b.AddTable(IPv4, "kept")
		if err := b.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := list(t, "kept"); err != nil {
		t.Errorf("nft list after add, delete, add: %v\n%s", err, out)
	}
	if err := (&Batch{}).Flush(); err != nil {
		t.Errorf("an empty batch: %v", err)
	}
}

// TestBatchLarge: a batch past the sockets' default buffers — 3,000
// rules of a published port each, some 800 KB, 3,000 answers — goes
// whole.
func TestBatchLarge(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	const rules = 3000
	b := &Batch{}
	b.AddTable(IPv4, "t")
	b.AddChain(IPv4, "t", "pre", &Hook{Num: unix.NF_INET_PRE_ROUTING, Priority: PriorityDstNAT, Type: "nat"})
	b.AddChain(IPv4, "t", "pub", nil)
	for i := range rules {
		port := binary.BigEndian.AppendUint16(nil, uint16(1000+i))
		b.AddRule(IPv4, "t", "pub", []Expr{
			Meta(unix.NFT_META_L4PROTO, Reg1),
			Cmp(unix.NFT_CMP_EQ, Reg1, []byte{unix.IPPROTO_TCP}),
			Payload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, Reg1),
			Cmp(unix.NFT_CMP_EQ, Reg1, port),
			Immediate(Reg1, []byte{10, 88, 0, 2}),
			Immediate(Reg2, port),
			DNAT(Reg1, Reg2),
		})
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := list(t, "t")
	if n := strings.Count(got, "dnat to 10.88.0.2:"); err != nil || n != rules || !strings.Contains(got, "tcp dport 3999 dnat to 10.88.0.2:3999") {
		t.Errorf("nft lists %d rules of %d, %v", n, rules, err)
	}
}

// TestBatchRefusedWhole: without CAP_NET_ADMIN the kernel refuses the
// batch as a whole, in one answer about its first message: Flush says
// so at once, not after waiting for the others.
func TestBatchRefusedWhole(t *testing.T) {
	const env = "BERTH_TEST_NO_NET_ADMIN"
	if os.Getenv(env) == "" {
		cmd := exec.Command("setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", os.Args[0],
			"-test.run=^TestBatchRefusedWhole$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), env+"=1")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Errorf("without CAP_NET_ADMIN: %v\n%s", err, out)
		}
		return
	}
	b := &Batch{}
	b.AddTable(IPv4, "t")
	err := b.Flush()
	if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "batch refused (1 messages)") {
		t.Errorf("Flush without CAP_NET_ADMIN = %v; want the batch refused, EPERM", err)
	}
}
