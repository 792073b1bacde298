package board

import (
	"net"
	"net/netip"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"

	"berth/internal/nft"
	"berth/internal/testutil"
)

// TestStaleUDPFlows: a UDP client that began sending to a host port before
// a container published it, or while another container had it, keeps
// one conntrack entry alive; berth deletes it when a container publishes
// the port, and a container's entries when it ends (or when the next
// berth finds its berth was killed), so that the client's next packet is
// NATed to the container publishing the port now, not to nobody or to an
// address another container may get next. Flows to that port number on
// other machines are not touched.
func TestStaleUDPFlows(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	n := testNetwork(t)
	// Another container's ports: berth's table, with conntrack, is there.
	if _, err := n.Attach(Endpoint{Name: "other", Ports: []Port{{9999, 99, "tcp"}}}); err != nil {
		t.Fatal(err)
	}
	// Unconnected: a port unreachable in answer is no error to the next.
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("10.88.0.1:40000")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sendTo := func(to string) {
		t.Helper()
		if _, err := conn.WriteToUDPAddrPort([]byte("ping"), netip.MustParseAddrPort(to)); err != nil {
			t.Fatal(err)
		}
	}
	send := func() { sendTo("10.88.0.1:5353") }
	// flowsTo lists the reply sources of the client's flows to dst.
	flowsTo := func(dst string) []netip.Addr {
		var to []netip.Addr
		d := netip.MustParseAddrPort(dst)
		if _, err := nft.DeleteFlows(func(f nft.Flow) bool {
			if f.Proto == unix.IPPROTO_UDP && f.OrigSrc.Port() == 40000 && f.OrigDst == d {
				to = append(to, f.ReplySrc.Addr())
			}
			return false
		}); err != nil {
			t.Fatal(err)
		}
		return to
	}
	to5353 := func() []netip.Addr { return flowsTo("10.88.0.1:5353") }
	// A flow to port 5353 of another machine (a server on the bridge's
	// subnet, say): not the published port's, and left alone.
	sendTo("10.88.0.50:5353")
	send()
	if to := to5353(); len(to) != 1 || to[0] != netip.MustParseAddr("10.88.0.1") {
		t.Fatalf("before the port is published: entries to %v, want one to the host itself", to)
	}
	web, err := n.Attach(Endpoint{Name: "web", Ports: []Port{{5353, 53, "udp"}}})
	if err != nil {
		t.Fatal(err)
	}
	if to := to5353(); len(to) != 0 {
		t.Errorf("web publishes 5353/udp: entries to %v are left", to)
	}
	send()
	if to := to5353(); len(to) != 1 || to[0] != web.Address.Addr() {
		t.Errorf("the client's next packet: entries to %v, want one to web, %s", to, web.Address.Addr())
	}
	if to := flowsTo("10.88.0.50:5353"); len(to) != 1 {
		t.Errorf("the flow to another machine's port 5353: entries %v, want it kept", to)
	}
	if err := n.Detach("web", true); err != nil {
		t.Fatal(err)
	}
	if to := to5353(); len(to) != 0 {
		t.Errorf("web has ended: entries to %v are left", to)
	}
	// A container whose berth was killed: its flows go when the next
	// berth finds its entry gone, and its address free.
	dead := as(n, deadOwner(t))
	gone, err := dead.Attach(Endpoint{Name: "gone", Ports: []Port{{5354, 53, "udp"}}})
	if err != nil {
		t.Fatal(err)
	}
	sendTo("10.88.0.1:5354")
	if to := flowsTo("10.88.0.1:5354"); len(to) != 1 || to[0] != gone.Address.Addr() {
		t.Fatalf("to the killed berth's container: entries to %v, want one to %s", to, gone.Address.Addr())
	}
	if _, err := n.Attach(Endpoint{Name: "next"}); err != nil {
		t.Fatal(err)
	}
	if to := flowsTo("10.88.0.1:5354"); len(to) != 0 {
		t.Errorf("the killed berth's container is gone: entries to %v are left", to)
	}
	// A berth that ends (berth run's Close, not Detach) forgets its
	// containers' flows too: a later container given the address must
	// not get them (review M1: berth run left them). Another berth,
	// alive, keeps the bridge and the table (removing the table would
	// drop every NATed entry anyway).
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	start, err := procStart(sleeper.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	stays := as(n, owner{sleeper.Process.Pid, start})
	if _, err := stays.Attach(Endpoint{Name: "stays", Ports: []Port{{9998, 98, "tcp"}}}); err != nil {
		t.Fatal(err)
	}
	last, err := n.Attach(Endpoint{Name: "last", Ports: []Port{{5355, 53, "udp"}}})
	if err != nil {
		t.Fatal(err)
	}
	sendTo("10.88.0.1:5355")
	if to := flowsTo("10.88.0.1:5355"); len(to) != 1 || to[0] != last.Address.Addr() {
		t.Fatalf("to the last container: entries to %v, want one to %s", to, last.Address.Addr())
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if to := flowsTo("10.88.0.1:5355"); len(to) != 0 {
		t.Errorf("its berth has closed the network: entries to %v are left", to)
	}
}
