package board

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/internal/rtnl"
	"berth/internal/testutil"
)

// TestAllocate: an address is a function of the name, never the bridge's,
// the subnet's or the broadcast address; a taken one moves the name on
// to the next free one; a full subnet is an error.
func TestAllocate(t *testing.T) {
	p16 := netip.MustParsePrefix("10.88.0.1/16")
	a, err := allocate(p16, "web", nil)
	if err != nil || !p16.Contains(a) || a == p16.Addr() {
		t.Fatalf("web: %v %v", a, err)
	}
	if b, _ := allocate(p16, "web", nil); b != a {
		t.Errorf("web got %v, then %v", a, b)
	}
	if b, _ := allocate(p16, "db", nil); b == a {
		t.Errorf("db and web share %v", a)
	}
	if b, _ := allocate(p16, "web", map[netip.Addr]bool{a: true}); b != a.Next() && !(a.Next() == netip.MustParseAddr("10.88.255.255") && b == netip.MustParseAddr("10.88.0.2")) {
		t.Errorf("web with %v taken got %v, want the next address", a, b)
	}
	// A /29: .1 is the bridge, .0 and .7 are not hosts; five are left.
	p29 := netip.MustParsePrefix("192.168.9.1/29")
	taken := map[netip.Addr]bool{}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		a, err := allocate(p29, name, taken)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if taken[a] || a == p29.Addr() || a.As4()[3] == 0 || a.As4()[3] == 7 {
			t.Fatalf("%s got %v (taken: %v)", name, a, taken)
		}
		taken[a] = true
	}
	if _, err := allocate(p29, "f", taken); err == nil || !strings.Contains(err.Error(), "no free address left in 192.168.9.0/29") {
		t.Errorf("a full subnet: %v", err)
	}
}

// testNetwork is a Network with its registry in a temporary directory and
// an appliance resolv.conf holding a loopback, an IPv6 and a reachable
// name server.
func testNetwork(t *testing.T) *Network {
	t.Helper()
	n, err := NewNetwork(netip.MustParsePrefix("10.88.0.1/16"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n.Dir = filepath.Join(dir, "net")
	n.ResolvConf = filepath.Join(dir, "resolv.conf")
	write(t, n.ResolvConf, "nameserver 127.0.0.53\nnameserver 2001:db8::53\nnameserver 192.0.2.53\nsearch lan\noptions edns0\n")
	n.Warn = t.Logf
	return n
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// ruleset is the table berth owns, as nft lists it, or "" when there is
// none.
func ruleset(t *testing.T) string {
	out, err := exec.Command("nft", "list", "table", "ip", TableName).CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) {
		t.Fatalf("nft: %v (make host-deps installs nftables)", err)
	}
	if err != nil {
		return ""
	}
	return string(out)
}

func sysctl(t *testing.T, name string) string {
	return strings.TrimSpace(read(t, "/proc/sys/"+name))
}

func inode(t *testing.T, path string) uint64 {
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestNetworkLifecycle attaches containers as berth does and checks what
// the kernel and the containers' files show at each step, then that
// Close leaves nothing: no bridge, no table, ip_forward as it was.
func TestNetworkLifecycle(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	n := testNetwork(t)
	web, err := n.Attach(Endpoint{Name: "web", Ports: []Port{{8080, 80, "tcp"}, {5353, 53, "udp"}}})
	if err != nil {
		t.Fatal(err)
	}
	br, err := net.InterfaceByName(BridgeName)
	if err != nil || br.Index != web.Bridge || br.Flags&net.FlagUp == 0 {
		t.Fatalf("bridge: %+v, %v; attachment %+v", br, err, web)
	}
	addrs, _ := br.Addrs()
	var v4 []string
	for _, a := range addrs {
		if ip := a.(*net.IPNet); ip.IP.To4() != nil {
			v4 = append(v4, a.String())
		}
	}
	if len(v4) != 1 || v4[0] != "10.88.0.1/16" {
		t.Errorf("bridge addresses %v", addrs)
	}
	if !strings.HasPrefix(web.Link, "bth") || web.Gateway.String() != "10.88.0.1" || web.Address.Bits() != 16 || web.Address.Addr() == web.Gateway {
		t.Errorf("attachment %+v", web)
	}
	if f, l := sysctl(t, "net/ipv4/ip_forward"), sysctl(t, "net/ipv4/conf/berth0/route_localnet"); f != "1" || l != "1" {
		t.Errorf("ip_forward %s, route_localnet %s", f, l)
	}
	// No container's router advertisement may route the host's IPv6.
	if ra := sysctl(t, "net/ipv6/conf/berth0/accept_ra"); ra != "0" {
		t.Errorf("berth0's accept_ra %s, want 0", ra)
	}
	rules := ruleset(t)
	for _, w := range []string{
		"tcp dport 8080 dnat to " + web.Address.Addr().String() + ":80",
		"udp dport 5353 dnat to " + web.Address.Addr().String() + ":53",
		`iifname "berth0" ip daddr 127.0.0.0/8 drop`,
		`iifname "berth0" ip saddr != 10.88.0.0/16 drop`,
		`ip saddr 10.88.0.0/16 oifname != "berth0" masquerade`,
		`oifname "berth0" drop`,
		// ip_forward was off in this new network namespace: berth's
		// bridge makes no router of the appliance.
		`iifname != "berth0" oifname != "berth0" drop`,
	} {
		if !strings.Contains(rules, w) {
			t.Errorf("table lacks %q:\n%s", w, rules)
		}
	}
	hosts := read(t, web.Hosts)
	if !strings.Contains(hosts, "127.0.0.1\tlocalhost\n") || !strings.Contains(hosts, web.Address.Addr().String()+"\tweb\n") {
		t.Errorf("web's hosts:\n%s", hosts)
	}
	resolv := read(t, web.ResolvConf)
	if !strings.Contains(resolv, "nameserver 192.0.2.53\n") || !strings.Contains(resolv, "search lan\n") ||
		strings.Contains(resolv, "\nnameserver 127.") || strings.Contains(resolv, "\nnameserver 2001") {
		t.Errorf("resolv.conf:\n%s", resolv)
	}
	ino := inode(t, web.Hosts)

	// The appliance's DNS changes (a DHCP client renames a new file
	// over it): the containers' resolv.conf follows, in place.
	stop, err := n.WatchResolvConf()
	if err != nil {
		t.Fatal(err)
	}
	write(t, n.ResolvConf+".new", "nameserver 198.51.100.53\n")
	if err := os.Rename(n.ResolvConf+".new", n.ResolvConf); err != nil {
		t.Fatal(err)
	}
	resolvIno := inode(t, web.ResolvConf)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(read(t, web.ResolvConf), "nameserver 198.51.100.53\n"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("resolv.conf after the appliance's changed:\n%s", read(t, web.ResolvConf))
		}
	}
	stop()
	if inode(t, web.ResolvConf) != resolvIno {
		t.Error("resolv.conf was replaced, not rewritten in place")
	}

	// A second container: web's hosts file learns its names, in place.
	db, err := n.Attach(Endpoint{Name: "db", Hostname: "database"})
	if err != nil {
		t.Fatal(err)
	}
	if hosts := read(t, web.Hosts); !strings.Contains(hosts, db.Address.Addr().String()+"\tdatabase db\n") || inode(t, web.Hosts) != ino {
		t.Errorf("web's hosts after db came (same inode: %v):\n%s", inode(t, web.Hosts) == ino, hosts)
	}
	if _, err := n.Attach(Endpoint{Name: "other", Ports: []Port{{8080, 8080, "tcp"}}}); err == nil || !strings.Contains(err.Error(), "port 8080/tcp is published by container web") {
		t.Errorf("a port published twice: %v", err)
	}
	if _, err := os.Stat(filepath.Join(n.Dir, "other.entry")); !os.IsNotExist(err) {
		t.Errorf("the refused container is registered: %v", err)
	}
	// A hostname (or name) that is another's name or hostname, in any
	// case, would take it over in every hosts file: refused, and not
	// registered.
	for _, e := range []Endpoint{{Name: "evil", Hostname: "web"}, {Name: "evil", Hostname: "database"}, {Name: "database"},
		{Name: "evil", Hostname: "WEB"}, {Name: "evil", Hostname: "DataBase"}} {
		if _, err := n.Attach(e); err == nil || !strings.Contains(err.Error(), "name or hostname on the bridge already") {
			t.Errorf("%+v: %v, want refused", e, err)
		}
		if _, err := os.Stat(filepath.Join(n.Dir, e.Name+".entry")); !os.IsNotExist(err) {
			t.Errorf("%+v: the refused container is registered: %v", e, err)
		}
	}
	if hosts := read(t, web.Hosts); strings.Contains(hosts, "evil") || strings.Count(hosts, "database") != 1 {
		t.Errorf("web's hosts after the refused names:\n%s", hosts)
	}

	// db goes and comes back at the same address.
	if err := n.Detach("db", false); err != nil {
		t.Fatal(err)
	}
	if hosts := read(t, web.Hosts); strings.Contains(hosts, "db") {
		t.Errorf("web's hosts after db went:\n%s", hosts)
	}
	db2, err := n.Attach(Endpoint{Name: "db"})
	if err != nil || db2.Address != db.Address || db2.Link == db.Link {
		t.Errorf("db again: %+v, %v; was %+v", db2, err, db)
	}
	// web stops: its ports are withdrawn.
	if err := n.Detach("web", false); err != nil {
		t.Fatal(err)
	}
	if rules := ruleset(t); strings.Contains(rules, "dnat to") || !strings.Contains(rules, "masquerade") {
		t.Errorf("table after web stopped:\n%s", rules)
	}

	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	noBerth(t, n.Dir)
}

// noBerth checks that nothing berth adds is left: no bridge, no table,
// ip_forward back to 0, no entries.
func noBerth(t *testing.T, dir string) {
	t.Helper()
	if _, err := net.InterfaceByName(BridgeName); err == nil {
		t.Error("the bridge is still there")
	}
	if rules := ruleset(t); rules != "" {
		t.Errorf("the table is still there:\n%s", rules)
	}
	if f := sysctl(t, "net/ipv4/ip_forward"); f != "0" {
		t.Errorf("ip_forward %s, was 0", f)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.entry"))
	if _, err := os.Stat(filepath.Join(dir, "bridge.state")); err == nil {
		left = append(left, "bridge.state")
	}
	if len(left) > 0 {
		t.Errorf("registry files left: %v", left)
	}
}

// as is n seen from another berth process.
func as(n *Network, o owner) *Network {
	return &Network{Bridge: n.Bridge, Prefix: n.Prefix, Dir: n.Dir, ResolvConf: n.ResolvConf, Warn: n.Warn, self: o}
}

// deadOwner returns an owner that has exited.
func deadOwner(t *testing.T) owner {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return owner{Pid: cmd.Process.Pid, Start: 1}
}

// TestNetworkStale: what a killed berth left — its entries, its
// containers' links, the bridge and the table — is removed by the next
// berth: by its first attach, or by CleanNetwork when none is attached.
func TestNetworkStale(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	n := testNetwork(t)
	dead := as(n, deadOwner(t))
	killed, err := dead.Attach(Endpoint{Name: "killed", Ports: []Port{{8080, 80, "tcp"}}})
	if err != nil {
		t.Fatal(err)
	}
	// Its container's link, as a veth left on the bridge.
	c, err := rtnl.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Do(rtnl.AddVeth(rtnl.Veth{Name: killed.Link, Master: killed.Bridge, PeerName: "peer0"})); err != nil {
		t.Fatal(err)
	}
	// Another live berth holds a name.
	start, _ := procStart(os.Getppid())
	parent := as(n, owner{os.Getppid(), start})
	if _, err := parent.Attach(Endpoint{Name: "taken"}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Attach(Endpoint{Name: "taken"}); err == nil || !strings.Contains(err.Error(), "attached by berth pid") {
		t.Errorf("a name another berth holds: %v", err)
	}
	web, err := n.Attach(Endpoint{Name: "web", Ports: []Port{{8080, 80, "tcp"}}})
	if err != nil {
		t.Fatalf("port 8080 is free once its killed owner's entry is gone: %v", err)
	}
	n.sweeping.Wait()
	if _, err := net.InterfaceByName(killed.Link); err == nil {
		t.Error("the killed berth's link is still there")
	}
	if hosts := read(t, web.Hosts); strings.Contains(hosts, "killed") || !strings.Contains(hosts, "taken") {
		t.Errorf("web's hosts:\n%s", hosts)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.InterfaceByName(BridgeName); err != nil {
		t.Error("the bridge went, but another berth still uses it")
	}
	// Now that berth is killed too: the next start cleans everything.
	if err := CleanNetwork(n.Dir); err != nil {
		t.Fatal(err)
	}
	if _, err := net.InterfaceByName(BridgeName); err != nil {
		t.Fatal("CleanNetwork removed the bridge of a live berth")
	}
	reg, err := openRegistry(n.Dir)
	if err != nil {
		t.Fatal(err)
	}
	reg.load(owner{})
	reg.entries["taken"].Owner = deadOwner(t)
	reg.put(reg.entries["taken"])
	reg.save()
	reg.close()
	if err := CleanNetwork(n.Dir); err != nil {
		t.Fatal(err)
	}
	noBerth(t, n.Dir)
}

// TestNetworkOtherSubnet: a berth configured for another subnet does not
// take over the bridge another one uses.
func TestNetworkOtherSubnet(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	n := testNetwork(t)
	if _, err := n.Attach(Endpoint{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	other := as(n, n.self)
	other.Prefix = netip.MustParsePrefix("10.89.0.1/16")
	if _, err := other.Attach(Endpoint{Name: "b"}); err == nil || !strings.Contains(err.Error(), "bridge berth0 10.88.0.1/16 is in use by another berth") {
		t.Errorf("attach with another subnet: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	noBerth(t, n.Dir)
}

// TestEntryFormat: entries and the bridge's state survive a round trip;
// a line that is not quite one is refused, naming what is wrong.
func TestEntryFormat(t *testing.T) {
	e := &entry{Name: "web", Owner: owner{42, 7}, Address: netip.MustParseAddr("10.88.1.2"), Hostname: "www",
		Attached: true, Link: "bth0badcafe", Ports: []Port{{8080, 80, "tcp"}, {5353, 53, "udp"}}}
	got, err := parseEntry("web", e.marshal())
	if err != nil || got.marshal() == nil || string(got.marshal()) != string(e.marshal()) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	bare := &entry{Name: "db", Owner: owner{1, 2}, Address: netip.MustParseAddr("10.88.0.9")}
	if got, err := parseEntry("db", bare.marshal()); err != nil || got.Link != "" || got.Hostname != "" || got.Ports != nil || got.Attached {
		t.Errorf("an entry with nothing optional: %+v, %v", got, err)
	}
	for _, bad := range []string{
		"berth-net-entry web 42 7 10.88.1.2 1 - - -",           // another name
		"berth-net-entry db 42 7 10.88.1.2 1 - -",              // a field short
		"berth-net-entry db 0 7 10.88.1.2 1 - - -",             // pid 0
		"berth-net-entry db 42 7 fd00::1 1 - - -",              // not IPv4
		"berth-net-entry db 42 7 10.88.1.2 2 - - -",            // attached 2
		"berth-net-entry db 42 7 10.88.1.2 1 - - 8080:80/sctp", // protocol
		"berth-net-entry db 42 7 10.88.1.2 1 - - 0:80/tcp",     // port 0
		"berth-net-entry db 42 -7 10.88.1.2 1 - - -",           // start
		"{\"name\":\"db\"}",                                    // not the format
	} {
		if _, err := parseEntry("db", []byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	st := &bridgeState{Bridge: "berth0", Prefix: "10.88.0.1/16", Rules: hashKey("x")}
	if got, err := parseBridgeState(st.marshal()); err != nil || *got != *st {
		t.Errorf("bridge state round trip: %+v, %v", got, err)
	}
	if _, err := parseBridgeState([]byte("berth-net-bridge berth0 10.88.0.1 - -")); err == nil {
		t.Error("a state without a prefix length accepted")
	}
}

// TestForwardLeftToHost: where ip_forward was on before the bridge (the
// host routes, by its own choice), berth adds no rule that drops the
// forwarding between other interfaces, and leaves ip_forward on.
func TestForwardLeftToHost(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	write(t, "/proc/sys/net/ipv4/ip_forward", "1")
	n := testNetwork(t)
	if _, err := n.Attach(Endpoint{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	rules := ruleset(t)
	if !strings.Contains(rules, `oifname "berth0" drop`) || strings.Contains(rules, `iifname != "berth0" oifname != "berth0" drop`) {
		t.Errorf("table where the host forwarded already:\n%s", rules)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if f := sysctl(t, "net/ipv4/ip_forward"); f != "1" {
		t.Errorf("ip_forward after the bridge: %s, want 1 as it was", f)
	}
}

// TestForwardRouter: with [network] router, berth drops no forwarding
// outside the bridge even where it turned ip_forward on; a berth run,
// which has no config (Router nil), follows what berth boot recorded;
// a config without router brings the drop back.
func TestForwardRouter(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	const isolate = `iifname != "berth0" oifname != "berth0" drop`
	yes, no := true, false
	boot := testNetwork(t)
	boot.Router = &yes
	if _, err := boot.Attach(Endpoint{Name: "gw"}); err != nil {
		t.Fatal(err)
	}
	if rules := ruleset(t); !strings.Contains(rules, `oifname "berth0" drop`) || strings.Contains(rules, isolate) {
		t.Errorf("table with router = true:\n%s", rules)
	}
	run := testNetwork(t)
	run.Dir = boot.Dir
	if _, err := run.Attach(Endpoint{Name: "job"}); err != nil {
		t.Fatal(err)
	}
	if rules := ruleset(t); strings.Contains(rules, isolate) {
		t.Errorf("table after a berth run joined:\n%s", rules)
	}
	boot.Router = &no
	if _, err := boot.Attach(Endpoint{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	if rules := ruleset(t); !strings.Contains(rules, isolate) {
		t.Errorf("table with router = false:\n%s", rules)
	}
	if err := run.Close(); err != nil {
		t.Fatal(err)
	}
	if err := boot.Close(); err != nil {
		t.Fatal(err)
	}
	if f := sysctl(t, "net/ipv4/ip_forward"); f != "0" {
		t.Errorf("ip_forward after the bridge: %s, want 0 as it was", f)
	}
}
