package boot

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"berth/board"
)

// NetworkConfig is the [network] table: the appliance's own interfaces,
// its time servers, and the bridge that net = "bridge" containers share.
type NetworkConfig struct {
	// NTP lists SNTP servers, names or addresses, optionally with :PORT.
	NTP []string `toml:"ntp"`
	// Bridge is the bridge's address and subnet, "10.88.0.1/16" by
	// default: the bridge takes the address, containers the rest.
	Bridge string `toml:"bridge"`
	// Router says the appliance routes between its own interfaces (a
	// gateway): when berth turns ip_forward on for the bridge, it then
	// drops no forwarding outside the bridge.
	Router    bool              `toml:"router"`
	Interface []InterfaceConfig `toml:"interface"`
}

// DefaultBridge is the bridge's address and subnet when [network] bridge
// is not set.
const DefaultBridge = board.DefaultBridgePrefix

// InterfaceConfig is one [[network.interface]]: an uplink matched by name
// or by MAC address, configured by DHCPv4 or statically.
type InterfaceConfig struct {
	Name string `toml:"name"`
	MAC  string `toml:"mac"`
	// DHCP asks for a DHCPv4 lease; otherwise Address (and Gateway) are
	// set as given.
	DHCP    bool   `toml:"dhcp"`
	Address string `toml:"address"`
	Gateway string `toml:"gateway"`
	// DNS servers, besides (before) those a lease names.
	DNS []string `toml:"dns"`
	// MTU, 68-65535; absent keeps the driver's.
	MTU *int `toml:"mtu"`
}

// check validates the [network] table; bridged says a container is on
// the bridge.
func (n NetworkConfig) check(v *validator, bridged bool) {
	for _, s := range n.NTP {
		if err := checkServer(s); err != nil {
			v.addKey("network.ntp", "%s: %v", quoteValue(s), err)
		}
	}
	if n.Bridge != "" {
		if _, err := ParseBridge(n.Bridge); err != nil {
			v.addKey("network.bridge", "%v", err)
		}
	}
	bridge := n.bridgePrefix()
	seen := map[string]bool{}
	for i, ic := range n.Interface {
		key := func(k string) string { return "network.interface#" + strconv.Itoa(i) + "." + k }
		// An uplink in the bridge's subnet, with containers on the
		// bridge: the kernel's route for the subnet would be the
		// uplink's or the bridge's, whichever came first, and
		// containers' traffic could leave by the uplink.
		if pfx, err := parseHostPrefix(ic.Address); err == nil && bridged && pfx.Masked().Overlaps(bridge.Masked()) {
			v.addKey(key("address"), "%s overlaps the bridge's subnet %s: containers' traffic would go out this interface; give [network] bridge another subnet", pfx, bridge.Masked())
		}
		mac := strings.ToLower(ic.MAC)
		if hw, err := net.ParseMAC(ic.MAC); err == nil {
			mac = hw.String() // one spelling: 52-54-00-… and 5254.00… are 52:54:00:…
		}
		id := ic.Name + "|" + mac
		if seen[id] {
			v.addKey(key("name"), "this interface is configured twice")
		}
		seen[id] = true
		for _, e := range ic.problems() {
			v.addKey(key(e.key), "%s", e.msg)
		}
	}
}

// problems lists what is wrong with one interface, by key.
func (ic InterfaceConfig) problems() []fieldError {
	var errs []fieldError
	bad := func(k, format string, args ...any) { errs = append(errs, fieldError{k, fmt.Sprintf(format, args...)}) }
	switch {
	case ic.Name == "" && ic.MAC == "":
		bad("name", "missing: want name = \"eth0\" or mac = \"52:54:00:12:34:56\"")
	case ic.Name != "" && ic.MAC != "":
		bad("mac", "give name or mac, not both")
	case ic.Name != "" && !validIfName(ic.Name):
		bad("name", "invalid interface name %s: want 1-15 characters without '/', ':' or spaces", quoteValue(ic.Name))
	case ic.MAC != "":
		if hw, err := net.ParseMAC(ic.MAC); err != nil || len(hw) != 6 {
			bad("mac", "invalid MAC address %s: want six hex bytes such as \"52:54:00:12:34:56\"", quoteValue(ic.MAC))
		}
	}
	switch {
	case ic.DHCP && ic.Address != "":
		bad("address", "give dhcp = true or a static address, not both")
	case !ic.DHCP && ic.Address == "":
		bad("address", "missing: want dhcp = true or address = \"192.168.7.2/24\"")
	case ic.Address != "":
		if _, err := parseHostPrefix(ic.Address); err != nil {
			bad("address", "%v", err)
		}
	}
	if ic.Gateway != "" {
		gw, err := netip.ParseAddr(ic.Gateway)
		pfx, perr := parseHostPrefix(ic.Address)
		switch {
		case err != nil || !gw.Is4():
			bad("gateway", "invalid IPv4 address %s", quoteValue(ic.Gateway))
		case ic.DHCP:
			bad("gateway", "with dhcp = true the lease names the gateway")
		case perr == nil && !pfx.Masked().Contains(gw):
			bad("gateway", "%s is not in %s", gw, pfx.Masked())
		}
	}
	for _, d := range ic.DNS {
		if a, err := netip.ParseAddr(d); err != nil || a.Zone() != "" {
			bad("dns", "invalid address %s: want an IP address", quoteValue(d))
		}
	}
	if ic.MTU != nil && (*ic.MTU < 68 || *ic.MTU > 65535) {
		bad("mtu", "%d: want 68-65535", *ic.MTU)
	}
	return errs
}

// validIfName reports whether s can name a Linux network interface.
func validIfName(s string) bool {
	if len(s) == 0 || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/: \t\n\x00")
}

// parseHostPrefix parses an IPv4 address with its prefix length,
// "192.168.7.2/24", refusing the subnet's own and broadcast addresses.
func parseHostPrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil || !p.Addr().Is4():
		return p, fmt.Errorf("invalid address %s: want an IPv4 address and prefix length such as \"192.168.7.2/24\"", quoteValue(s))
	case p.Bits() < 1 || p.Bits() > 30:
		return p, fmt.Errorf("%s: want a prefix length of 1 to 30", s)
	case p.Addr() == p.Masked().Addr() || p.Addr() == lastAddr(p):
		return p, fmt.Errorf("%s is the subnet's own or broadcast address, not a host's", s)
	}
	return p, nil
}

// lastAddr is the broadcast address of p's subnet.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ParseBridge parses [network] bridge: the bridge's own address and its
// subnet, which must leave room for containers (a /30 or wider).
func ParseBridge(s string) (netip.Prefix, error) {
	p, err := parseHostPrefix(s)
	if err != nil {
		return p, err
	}
	if p.Bits() > 30 {
		return p, fmt.Errorf("%s: want a subnet of /30 or wider", s)
	}
	for _, r := range notBridgeRanges {
		if r.net.Overlaps(p.Masked()) {
			return p, fmt.Errorf("%s: its subnet %s overlaps %s (%s), which no bridge may use", s, p.Masked(), r.net, r.what)
		}
	}
	return p, nil
}

// notBridgeRanges are the IPv4 ranges whose addresses are not a subnet's
// to hand out: the kernel routes them otherwise (loopback, multicast),
// other links use them (link-local: a cloud's metadata server), or they
// are no host's (this network, reserved). A bridge subnet overlapping
// one of them is refused; 10.0.0.1/8 is as wide as a private one goes.
var notBridgeRanges = []struct {
	net  netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
}

// checkServer accepts a host name or an address, with an optional :PORT.
func checkServer(s string) error {
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("invalid port %s", quoteValue(port))
		}
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if len(host) == 0 || len(host) > 253 {
		return fmt.Errorf("want a host name or an address")
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("want a host name or an address")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("want a host name or an address")
			}
		}
	}
	return nil
}
