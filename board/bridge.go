package board

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"berth/internal/nft"
	"berth/internal/rtnl"
	"berth/internal/safe"
)

// The bridge network of net = "bridge" containers: one bridge per host
// (network namespace), its address the containers' gateway, egress
// masqueraded behind the uplinks and published ports DNAT'ed by the
// nftables table berth (nat.go). Every berth process on the host shares
// it — PID 1, berth boot, each berth run — through the registry
// (netreg.go): the first that needs it creates the bridge and the table,
// the last that leaves removes them, and whichever comes next cleans up
// after one that was killed.

// Defaults of the bridge network.
const (
	BridgeName          = "berth0"
	DefaultBridgePrefix = "10.88.0.1/16"
	DefaultNetDir       = "/run/berth/net"
	DefaultResolvConf   = "/etc/resolv.conf"
)

// NetModules are the kernel modules the bridge network needs, loaded in
// this order (their dependencies with them): crc32c first, as libcrc32c
// (which nf_conntrack needs) only soft-depends on it.
var NetModules = []string{
	"crc32c_generic", "bridge", "veth", "nf_tables", "nf_nat", "nft_chain_nat",
	"nft_nat", "nft_masq", "nft_fib_ipv4", "nft_ct",
}

// Port is a published port: Host on the appliance to Container.
type Port struct {
	Host      uint16
	Container uint16
	Proto     string // "tcp" or "udp"
}

func (p Port) String() string { return fmt.Sprintf("%d:%d/%s", p.Host, p.Container, p.Proto) }

// Endpoint is a container as it attaches.
type Endpoint struct {
	Name, Hostname string
	Ports          []Port
}

// Attachment is what a container needs to join the bridge (see
// container.Network).
type Attachment struct {
	Bridge            int
	Link              string
	Address           netip.Prefix
	Gateway           netip.Addr
	Hosts, ResolvConf string
}

// Network is this process's handle on the bridge network.
type Network struct {
	// Bridge names the bridge; Prefix is its address and subnet.
	Bridge string
	Prefix netip.Prefix
	// Dir is the registry; ResolvConf the appliance's resolver
	// configuration, which the containers' is made from.
	Dir        string
	ResolvConf string
	// Warn receives problems that fail nothing (a stale link that could
	// not be deleted); nil drops them.
	Warn func(format string, args ...any)
	// Router, when set, is [network] router: whether the appliance
	// routes between its own interfaces (bridgeState.Routes). nil keeps
	// what the bridge's state records (berth run has no config).
	Router *bool

	self     owner
	sweeping sync.WaitGroup
}

// NewNetwork returns a handle on the default bridge with address and
// subnet prefix. A zero prefix takes the one of the bridge another berth
// has made, or DefaultBridgePrefix.
func NewNetwork(prefix netip.Prefix) (*Network, error) {
	me, err := self()
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	return &Network{Bridge: BridgeName, Prefix: prefix, Dir: DefaultNetDir, ResolvConf: DefaultResolvConf, self: me}, nil
}

// Attach attaches container e: its address (a restarted container keeps
// the one it had, for as long as this process holds it), its ports
// published, its hosts and resolv.conf files written and every other
// container's hosts file updated. The bridge and the table are created
// when missing. The caller then starts the container with the attachment
// and calls Detach when it has ended.
func (n *Network) Attach(e Endpoint) (Attachment, error) {
	var a Attachment
	held := false
	index, err := n.update(func(r *registry) error {
		if !n.Prefix.IsValid() {
			n.Prefix = netip.MustParsePrefix(DefaultBridgePrefix)
			if st := r.state; st != nil {
				if p, err := netip.ParsePrefix(st.Prefix); err == nil {
					n.Bridge, n.Prefix = st.Bridge, p
				}
			}
		}
		if st := r.state; st != nil && (st.Bridge != n.Bridge || st.Prefix != n.Prefix.String()) {
			return fmt.Errorf("bridge %s %s is in use by another berth; this one is configured for %s %s", st.Bridge, st.Prefix, n.Bridge, n.Prefix)
		}
		old := r.entries[e.Name]
		if old != nil && old.Owner != n.self {
			return fmt.Errorf("container name %s is on the bridge already, attached by berth pid %d", e.Name, old.Owner.Pid)
		}
		held = old != nil
		if err := namesFree(r, e); err != nil {
			return err
		}
		if err := portsFree(r, e); err != nil {
			return err
		}
		en := &entry{Name: e.Name, Owner: n.self, Hostname: e.Hostname, Attached: true, Ports: e.Ports,
			Link: fmt.Sprintf("bth%08x", rand.Uint32())}
		if old != nil {
			en.Address = old.Address
		} else {
			taken := map[netip.Addr]bool{}
			for _, o := range r.entries {
				taken[o.Address] = true
			}
			addr, err := allocate(n.Prefix, e.Name, taken)
			if err != nil {
				return err
			}
			en.Address = addr
		}
		r.put(en)
		a = Attachment{Link: en.Link, Address: netip.PrefixFrom(en.Address, n.Prefix.Bits()), Gateway: n.Prefix.Addr(),
			Hosts: filepath.Join(n.Dir, e.Name+".hosts"), ResolvConf: filepath.Join(n.Dir, e.Name+".resolv")}
		return nil
	})
	if err != nil {
		// Withdraw what was recorded; an address held before stays held.
		_ = n.Detach(e.Name, !held)
		return Attachment{}, err
	}
	a.Bridge = index
	n.forgetPortFlows(e.Ports)
	return a, nil
}

// Detach is the end of a container's run: its ports are withdrawn, the
// other containers' hosts files updated and its conntrack entries
// deleted (flows.go). With release its address is
// given up too; otherwise the next Attach of the name gets it again.
func (n *Network) Detach(name string, release bool) error {
	var addr netip.Addr
	_, err := n.update(func(r *registry) error {
		e := r.entries[name]
		if e != nil && e.Owner == n.self {
			addr = e.Address
		}
		switch {
		case e == nil || e.Owner != n.self:
		case release:
			r.drop(name)
		default:
			e.Attached, e.Link, e.Ports = false, "", nil
			r.put(e)
		}
		return nil
	})
	n.forgetAddrFlows(addr)
	return err
}

// Close releases every address this process holds, and forgets their
// connections as Detach does (a later container given an address must
// not get the flows of the one that had it); the last berth to leave
// removes the bridge and the table. It waits for the deletion of stale
// links.
func (n *Network) Close() error {
	addrs := map[netip.Addr]bool{}
	_, err := n.update(func(r *registry) error {
		for name, e := range r.entries {
			if e.Owner == n.self {
				addrs[e.Address] = true
				r.drop(name)
			}
		}
		return nil
	})
	if len(addrs) > 0 { // one pass over the table for them all
		n.forgetFlows(func(f nft.Flow) bool { return addrs[f.OrigSrc.Addr()] || addrs[f.ReplySrc.Addr()] })
	}
	n.sweeping.Wait()
	return err
}

// CleanNetwork removes what killed berth processes left of the bridge
// network in dir — their entries, links, and the bridge and table when no
// live berth uses them — and waits until it is done. A missing dir has
// nothing to clean.
func CleanNetwork(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	n := &Network{Dir: dir}
	_, err := n.update(func(*registry) error { return nil })
	n.sweeping.Wait()
	return err
}

// update runs op on the locked registry, drops what dead owners left,
// and brings the host in line with what remains: the bridge and the
// table with their rules, or nothing at all. It returns the bridge's
// index, 0 when there is none.
func (n *Network) update(op func(*registry) error) (int, error) {
	r, err := openRegistry(n.Dir)
	if err != nil {
		return 0, err
	}
	defer r.close()
	if err := r.load(n.self); err != nil {
		return 0, err
	}
	if len(r.stale) > 0 {
		n.sweep(r.stale)
	}
	for _, a := range r.staleAddrs {
		n.forgetAddrFlows(a) // a killed berth's container: its address is free again
	}
	if len(r.entries) == 0 && r.state != nil {
		// Only what killed berths left behind: start from nothing.
		if err := n.teardown(r); err != nil {
			return 0, err
		}
	}
	opErr := op(r)
	if err := r.save(); err != nil {
		return 0, err
	}
	index, err := n.apply(r)
	if opErr != nil {
		return index, opErr
	}
	return index, err
}

// apply sets the host up for the registry's entries, or removes what
// berth added when none is left.
func (n *Network) apply(r *registry) (int, error) {
	if len(r.entries) == 0 {
		if r.state == nil {
			return 0, nil
		}
		return 0, n.teardown(r)
	}
	index, err := n.ensureBridge(r)
	if err != nil || index == 0 {
		return 0, err
	}
	pubs := publishes(r)
	routes := r.state.Routes
	if n.Router != nil {
		routes = *n.Router
	}
	if key := hashKey(rulesKey(r.state, pubs, routes)); key != r.state.Rules {
		prefix, _ := netip.ParsePrefix(r.state.Prefix)
		if err := applyRules(r.state.Bridge, prefix.Masked(), pubs, r.state.Forward != "" && !routes); err != nil {
			return index, err
		}
		st := *r.state
		st.Rules, st.Routes = key, routes
		if err := r.saveState(&st); err != nil {
			return index, err
		}
	}
	return index, r.writeFiles(n.resolvConf())
}

func (n *Network) resolvConf() string {
	if n.ResolvConf == "" {
		return DefaultResolvConf
	}
	return n.ResolvConf
}

// publishes are the DNAT rules of every attached container's ports.
func publishes(r *registry) []publish {
	var out []publish
	for _, e := range r.attached() {
		for _, p := range e.Ports {
			out = append(out, publish{Proto: p.Proto, Port: p.Host, Addr: e.Address, ToPort: p.Container})
		}
	}
	return out
}

// rulesKey identifies a rule set, to apply it only when it changed.
func rulesKey(st *bridgeState, pubs []publish, routes bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s forward=%q routes=%v", st.Bridge, st.Prefix, st.Forward, routes)
	for _, p := range pubs {
		fmt.Fprintf(&b, " %s:%d>%s:%d", p.Proto, p.Port, p.Addr, p.ToPort)
	}
	return b.String()
}

// ensureBridge returns the bridge's index, creating it first when it is
// missing: bridge.state is written before, so that a berth killed half way
// leaves a record for the next one to clean up.
func (n *Network) ensureBridge(r *registry) (int, error) {
	if r.state != nil {
		if index, err := ifIndex(r.state.Bridge); err == nil {
			return index, nil
		}
	}
	if n.Bridge == "" {
		// CleanNetwork, with live entries of another berth but no
		// bridge: that berth creates it on its next change.
		return 0, nil
	}
	forward, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		return 0, fmt.Errorf("bridge %s: %w", n.Bridge, err)
	}
	st := &bridgeState{Bridge: n.Bridge, Prefix: n.Prefix.String()}
	if r.state != nil {
		st.Forward, st.Routes = r.state.Forward, r.state.Routes
	} else if f := strings.TrimSpace(string(forward)); f != "1" {
		st.Forward = f
	}
	if err := r.saveState(st); err != nil {
		return 0, err
	}
	if err := createBridge(n.Bridge, n.Prefix); err != nil {
		return 0, err
	}
	return ifIndex(n.Bridge)
}

// createBridge creates bridge name with address prefix, or checks that
// an existing one has it, and turns on forwarding and, on the bridge,
// route_localnet (for ports published on 127.0.0.1), and off its IPv6
// router advertisements. The bridge gets a
// hardware address of its own, made of its IPv4 address as a
// container's is (rtnl.AddrMAC): without one a Linux bridge takes the
// lowest of its ports' addresses, so every container's gateway would
// change its MAC whenever a container with a lower one came or went.
func createBridge(name string, prefix netip.Prefix) error {
	c, err := rtnl.Dial()
	if err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	defer c.Close()
	mac := rtnl.AddrMAC(prefix.Addr())
	err = c.Do(rtnl.AddBridge(name, mac))
	existed := errors.Is(err, unix.EEXIST)
	if err != nil && !existed {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	index, err := ifIndex(name)
	if err != nil {
		return err
	}
	if existed && mac != nil { // there already: it gets the address too
		if err := c.Do(rtnl.SetMAC(index, mac)); err != nil {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
	}
	if err := c.Do(rtnl.AddAddr(index, prefix, 0)); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	for _, s := range []string{"net/ipv4/conf/" + name + "/route_localnet", "net/ipv4/ip_forward"} {
		if err := os.WriteFile("/proc/sys/"+s, []byte("1"), 0); err != nil {
			return fmt.Errorf("bridge %s: sysctl %s: %w", name, s, err)
		}
	}
	// A container with NET_RAW could otherwise send the host a router
	// advertisement and take its IPv6 routing; the bridge is IPv4's.
	if err := rtnl.IgnoreRouterAds(name); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	return nil
}

// teardown removes the table and the bridge and puts ip_forward back.
func (n *Network) teardown(r *registry) error {
	var errs []error
	errs = append(errs, removeRules())
	c, err := rtnl.Dial()
	if err == nil {
		err = c.Do(rtnl.DelLink(r.state.Bridge))
		c.Close()
	}
	if err != nil && !errors.Is(err, unix.ENODEV) {
		errs = append(errs, fmt.Errorf("delete bridge %s: %w", r.state.Bridge, err))
	}
	if f := r.state.Forward; f != "" {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte(f), 0); err != nil {
			errs = append(errs, fmt.Errorf("restore ip_forward: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return r.saveState(nil)
}

// sweep deletes links of containers whose berth is gone, in the
// background: a deletion waits for an RCU grace period (some 20 ms). A
// panic there is reported through Warn, like a failed deletion.
func (n *Network) sweep(links []string) {
	n.sweeping.Add(1)
	go func() {
		defer n.sweeping.Done()
		err := safe.Call(fmt.Sprintf("delete stale links %v", links), func() error {
			n.deleteLinks(links)
			return nil
		})
		if err != nil {
			n.warn("%v", err)
		}
	}()
}

// sweepHook, when set (tests), runs at the start of deleteLinks.
var sweepHook func()

// deleteLinks deletes links, warning of those it could not.
func (n *Network) deleteLinks(links []string) {
	if sweepHook != nil {
		sweepHook()
	}
	c, err := rtnl.Dial()
	if err != nil {
		n.warn("delete stale links %v: %v", links, err)
		return
	}
	defer c.Close()
	for _, l := range links {
		if err := c.Do(rtnl.DelLink(l)); err != nil && !errors.Is(err, unix.ENODEV) {
			n.warn("delete stale link %s: %v", l, err)
		}
	}
}

func (n *Network) warn(format string, args ...any) {
	if n.Warn != nil {
		n.Warn(format, args...)
	}
}

// ifIndex returns the index of interface name (SIOCGIFINDEX).
func ifIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}
