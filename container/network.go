package container

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strconv"

	"golang.org/x/sys/unix"

	"berth/internal/rtnl"
)

// Network attaches a net = "bridge" container to a bridge that the caller
// has set up (package board). The parent creates a veth pair in one
// request: its host end, Link, up and a port of the bridge with hairpin
// on; the peer born as eth0 in the init's network namespace, so no link is
// ever moved between namespaces (a move waits for an RCU grace period).
// The init, inside its namespace, brings lo and eth0 up and sets the
// address and the default route itself. The pair vanishes with the
// namespace when the container ends: nothing is deleted on the start path.
type Network struct {
	// Bridge is the bridge's interface index; Link names the host end of
	// the pair (at most 15 bytes, unique on the host).
	Bridge int
	Link   string
	// Address is the container's address and the bridge's prefix
	// length; Gateway, the bridge's address, its default route.
	Address netip.Prefix
	Gateway netip.Addr
	// Hosts and ResolvConf are host files bind-mounted read-only at
	// /etc/hosts and /etc/resolv.conf, unless the spec mounts something
	// there itself; "" for none. Their owner rewrites them in place, so a
	// running container sees each update.
	Hosts, ResolvConf string
}

// initNet is what the init needs of the Network.
type initNet struct {
	Address netip.Prefix `json:"address"`
	Gateway netip.Addr   `json:"gateway"`
}

// MAC is the container's eth0 address, derived from its IPv4 address (a
// locally administered 02:62 and the address's four bytes), so that a
// container restarted at the same address keeps its neighbours' ARP
// entries valid.
func (n *Network) MAC() net.HardwareAddr {
	return rtnl.AddrMAC(n.Address.Addr())
}

// check refuses an attachment the parent cannot use.
func (n *Network) check() error {
	switch {
	case n == nil:
		return errors.New("net = \"bridge\" needs a network attachment (berth sets up the bridge)")
	case n.Bridge <= 0 || n.Link == "" || len(n.Link) > unix.IFNAMSIZ-1:
		return fmt.Errorf("network attachment: bridge index %d, link %q", n.Bridge, n.Link)
	case !n.Address.IsValid() || !n.Address.Addr().Is4() || !n.Gateway.Is4():
		return fmt.Errorf("network attachment: address %v, gateway %v: want IPv4", n.Address, n.Gateway)
	}
	return nil
}

// mounts are the bind mounts of the attachment's files that the spec
// does not replace with its own.
func (n *Network) mounts(spec Spec) []Mount {
	own := map[string]bool{}
	for _, m := range spec.Mounts {
		own[path.Clean(m.Target)] = true
	}
	var out []Mount
	for _, f := range []struct{ source, target string }{{n.Hosts, "/etc/hosts"}, {n.ResolvConf, "/etc/resolv.conf"}} {
		if f.source != "" && !own[f.target] {
			out = append(out, Mount{Source: f.source, Target: f.target, Readonly: true})
		}
	}
	return out
}

// attach creates the veth pair, its peer in the network namespace of the
// init pid.
func (n *Network) attach(pid int) error {
	nsPath := "/proc/" + strconv.Itoa(pid) + "/ns/net"
	ns, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("attach to bridge: open %s: %w", nsPath, err)
	}
	defer unix.Close(ns)
	c, err := rtnl.Dial()
	if err != nil {
		return fmt.Errorf("attach to bridge: %w", err)
	}
	defer c.Close()
	err = c.Do(
		rtnl.AddVeth(rtnl.Veth{Name: n.Link, Master: n.Bridge, PeerName: "eth0", PeerMAC: n.MAC(), NetNS: ns}),
		rtnl.SetHairpin(n.Link),
	)
	if err != nil {
		return fmt.Errorf("attach to bridge: %w", err)
	}
	return nil
}

// detach removes the host end of the veth pair, and the pair with it, at
// once: a failed start's pair would otherwise go only when the kernel has
// torn the child's network namespace down, later, and the next start
// under the same name would find it there. One gone already is no error.
func (n *Network) detach() error {
	c, err := rtnl.Dial()
	if err != nil {
		return fmt.Errorf("detach from bridge: %w", err)
	}
	defer c.Close()
	if err := c.Do(rtnl.DelLink(n.Link)); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("detach from bridge: %w", err)
	}
	return nil
}

// netUp brings up lo and, on a bridge, eth0 with its address and default
// route, in one netlink batch from inside the container's namespace.
func netUp(n *initNet) error {
	if n == nil {
		return loopbackUp()
	}
	eth0, err := ifIndex("eth0")
	if err != nil {
		return err
	}
	// The bridge's containers get their IPv4 route from berth, and
	// IPv6 none: another container with NET_RAW could send one.
	if err := rtnl.IgnoreRouterAds("eth0", "default"); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	c, err := rtnl.Dial()
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	defer c.Close()
	err = c.Do(rtnl.SetUp(1), rtnl.SetUp(eth0),
		rtnl.AddAddr(eth0, n.Address, 0), rtnl.AddDefaultRoute(eth0, n.Gateway))
	if err != nil {
		return fmt.Errorf("network: eth0 %s via %s: %w", n.Address, n.Gateway, err)
	}
	return nil
}

// ifIndex returns the index of interface name (SIOCGIFINDEX): eth0's is
// the kernel's choice, after the fallback tunnels some modules add to
// every new namespace.
func ifIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("network: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, fmt.Errorf("network: %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("network: no %s in the container's namespace: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}
