package boot

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"berth/board"
	"berth/container"
)

// net = "bridge" containers. Package board sets up and keeps the shared
// bridge network (the bridge, the nftables table, addresses, the hosts
// and resolv.conf files); package container attaches each container to
// it. The supervisor attaches a container before each start and detaches
// it after each exit: its address stays its own across restarts, until a
// reload removes it or berth stops, when Close gives everything back.

// bridgeNet is the supervisor's handle on the bridge network.
type bridgeNet struct {
	*board.Network
	// stopWatch ends the watch on the appliance's resolv.conf.
	stopWatch func()
}

// checkPorts refuses a host port that two containers publish.
func (cfg *Config) checkPorts(v *validator) {
	owner := map[string]string{}
	for i, c := range cfg.Container {
		if c.Net != "bridge" {
			continue // refused by the spec's check
		}
		for j, text := range c.Ports { // j as the config counts them
			p, err := container.ParsePort(text)
			if err != nil {
				continue // refused by the spec's check
			}
			key := fmt.Sprintf("%d/%s", p.Host, p.Proto)
			if other, ok := owner[key]; ok && other != c.Name {
				v.addKey("container#"+strconv.Itoa(i)+".ports", "ports[%d]: host port %s is published by container %s too", j, key, other)
				continue
			}
			owner[key] = c.Name
		}
	}
}

// checkBridgeNames refuses, among the containers on the bridge, a name or
// hostname that another already has: each container's /etc/hosts maps
// every name and hostname on the bridge to one address, and the first
// line would win (board/netfiles.go), so one container could take
// another's name. A container's hostname may be its own name.
func (cfg *Config) checkBridgeNames(v *validator) {
	owner := map[string]string{} // a name or hostname on the bridge → its container
	for i, c := range cfg.Container {
		if c.Net != "bridge" {
			continue
		}
		for _, n := range [...]struct{ key, name string }{{"name", c.Name}, {"hostname", c.Hostname}} {
			if n.name == "" {
				continue
			}
			// A hosts file's names match whatever their case.
			folded := strings.ToLower(n.name)
			if other, ok := owner[folded]; ok && other != c.Name {
				v.addKey("container#"+strconv.Itoa(i)+"."+n.key, "%s is container %s's name or hostname on the bridge already (names match whatever their case)", container.Quote(n.name), container.Quote(other))
				continue
			}
			owner[folded] = c.Name
		}
	}
}

// bridgePrefix is [network] bridge, or its default.
func (n NetworkConfig) bridgePrefix() netip.Prefix {
	p, err := ParseBridge(n.Bridge)
	if err != nil {
		p, _ = ParseBridge(DefaultBridge)
	}
	return p
}

// network returns the handle on the bridge network, made on first use
// for [network] bridge as the config had it then (a reload that changes
// it takes effect at the next boot). As PID 1, the kernel modules it
// needs are loaded first. From then on the containers' resolv.conf
// follows the appliance's.
func (s *supervisor) network() (*bridgeNet, error) {
	if s.net != nil {
		return s.net, nil
	}
	if s.b.opts.PID1 {
		loaded, errs := board.Profile{}.LoadModules(board.NetModules)
		s.b.log.Printf("bridge network: modules loaded: %v", loaded)
		for _, err := range errs {
			s.b.log.Printf("warning: %v", err)
		}
	}
	n, err := board.NewNetwork(s.b.cfg.Network.bridgePrefix())
	if err != nil {
		return nil, err
	}
	n.Warn = s.b.log.Printf
	router := s.b.cfg.Network.Router
	n.Router = &router
	s.net = &bridgeNet{Network: n, stopWatch: func() {}}
	if stop, err := n.WatchResolvConf(); err != nil {
		s.b.log.Printf("warning: containers' resolv.conf will not follow the appliance's: %v", err)
	} else {
		s.net.stopWatch = stop
	}
	return s.net, nil
}

// attach attaches u's container to the bridge before it starts.
func (s *supervisor) attach(u *unit) (*container.Network, error) {
	n, err := s.network()
	if err != nil {
		return nil, err
	}
	hostname := u.spec.Hostname
	if hostname == "" {
		hostname = u.name
	}
	e := board.Endpoint{Name: u.name, Hostname: hostname}
	for _, p := range u.spec.PublishedPorts() {
		e.Ports = append(e.Ports, board.Port{Host: p.Host, Container: p.Container, Proto: p.Proto})
	}
	a, err := n.Attach(e)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	u.address = a.Address.Addr().String()
	return &container.Network{Bridge: a.Bridge, Link: a.Link, Address: a.Address, Gateway: a.Gateway,
		Hosts: a.Hosts, ResolvConf: a.ResolvConf}, nil
}

// detach withdraws u's ports and its names from the others' hosts files
// after its container has ended; release gives its address up too.
func (s *supervisor) detach(u *unit, release bool) {
	if s.net == nil || u.spec.Net != "bridge" {
		return
	}
	if err := s.net.Detach(u.name, release); err != nil {
		s.b.log.Printf("warning: container %s: bridge: %v", u.name, err)
	}
	if release {
		u.address = ""
	}
}

// closeNetwork gives the bridge network back: the last berth on the
// host removes the bridge and the table.
func (s *supervisor) closeNetwork() {
	if s.net == nil {
		return
	}
	s.net.stopWatch()
	if err := s.net.Close(); err != nil {
		s.b.log.Printf("warning: bridge network: %v", err)
	}
}

// cleanNetwork removes what a killed berth left of the bridge network.
func (b *booter) cleanNetwork() {
	if err := board.CleanNetwork(board.DefaultNetDir); err != nil {
		b.log.Printf("warning: bridge network left by an earlier berth: %v", err)
	}
}

// onBridge reports whether the config has a container name with
// net = "bridge".
func (cfg *Config) onBridge(name string) bool {
	for _, c := range cfg.Container {
		if c.Name == name {
			return c.Net == "bridge"
		}
	}
	return false
}
