package board

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/rtnl"
	"berth/internal/safe"
)

// Interface is one uplink of the appliance ([[network.interface]]).
type Interface struct {
	// Name or MAC selects the link.
	Name string
	MAC  net.HardwareAddr
	// DHCP asks for a DHCPv4 lease; otherwise Address, and Gateway when
	// valid, are set as given.
	DHCP    bool
	Address netip.Prefix
	Gateway netip.Addr
	// DNS servers, listed before those of a lease.
	DNS []netip.Addr
	// MTU; 0 keeps the driver's.
	MTU int
}

// label is how the config names the interface.
func (i Interface) label() string {
	if i.Name != "" {
		return i.Name
	}
	return "mac " + i.MAC.String()
}

// UplinkConfig is what StartUplink configures.
type UplinkConfig struct {
	Interfaces []Interface
	// Hostname is the config's hostname; when empty, a lease's host name
	// option names the appliance.
	Hostname string
	// ResolvConf receives the DNS servers (default /etc/resolv.conf).
	ResolvConf string
	// LoadDrivers loads the drivers of the network devices present
	// before looking for the interfaces (see loadNICDrivers).
	LoadDrivers bool
	// Logf logs a step, Debugf a detail.
	Logf, Debugf func(format string, args ...any)
	// Changed is called whenever an interface's state changes. It runs
	// on the uplink's goroutines and must not block.
	Changed func()
	// Bridge is the containers' bridge subnet: a lease in it is logged
	// as a warning (the containers' traffic may leave by the uplink).
	Bridge netip.Prefix
}

// Uplink configures the appliance's own interfaces: loopback at once,
// then each configured interface on a goroutine of its own — waiting for
// the link to appear, its MTU, up, then a static address or a DHCP
// lease kept for as long as berth runs. Nothing it does blocks its
// caller, and a panic in it restarts the interface rather than reaching
// PID 1.
type Uplink struct {
	cfg  UplinkConfig
	stop chan struct{}
	wg   sync.WaitGroup

	rtMu sync.Mutex // one request batch at a time on rt
	rt   *rtnl.Conn

	mu    sync.Mutex // guards each link's run-time state
	links []*link

	// appliedMu guards what the uplink wrote outside the kernel:
	// resolv.conf, and the hostname a lease set.
	appliedMu  sync.Mutex
	lastResolv string
	hostname   string
}

// link is one configured interface at run time; its fields after cfg
// are guarded by Uplink.mu.
type link struct {
	u      *Uplink
	cfg    Interface
	metric int // of its default route: config order is preference

	name   string // the link found, by name or MAC
	index  int
	mac    net.HardwareAddr
	state  string
	lease  *Lease
	ready  bool
	client *dhcpClient
}

// StartUplink brings loopback up and starts configuring each interface
// in the background.
func StartUplink(cfg UplinkConfig) (*Uplink, error) {
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	for _, f := range []*func(string, ...any){&cfg.Logf, &cfg.Debugf} {
		if *f == nil {
			*f = func(string, ...any) {}
		}
	}
	rt, err := rtnl.Dial()
	if err != nil {
		return nil, err
	}
	u := &Uplink{cfg: cfg, stop: make(chan struct{}), rt: rt}
	if err := u.do(rtnl.SetUpName("lo")); err != nil {
		rt.Close()
		return nil, fmt.Errorf("loopback up: %w", err)
	}
	for i, ic := range cfg.Interfaces {
		u.links = append(u.links, &link{u: u, cfg: ic, metric: i, state: "starting"})
	}
	if len(u.links) > 0 {
		u.writeResolv() // the static DNS servers, before any lease
		u.wg.Add(1)
		go u.start()
	}
	return u, nil
}

// start loads the NIC drivers, then configures each interface.
func (u *Uplink) start() {
	defer u.wg.Done()
	if u.cfg.LoadDrivers {
		t := time.Now()
		err := safe.Call("load NIC drivers", func() error {
			loaded, errs := loadNICDrivers("/sys")
			if len(loaded) > 0 {
				u.cfg.Logf("network: NIC drivers loaded in %.1f ms: %v", float64(time.Since(t))/1e6, loaded)
			}
			for _, err := range errs {
				u.cfg.Logf("network: warning: %v", err)
			}
			return nil
		})
		if err != nil {
			u.cfg.Logf("network: loading NIC drivers: %v", err)
		}
	}
	for _, l := range u.links {
		u.wg.Add(1)
		go l.run()
	}
}

// Stop ends every interface's goroutine and waits for them. Addresses and
// leases stay as they are: no DHCPRELEASE is sent.
func (u *Uplink) Stop() {
	close(u.stop)
	u.mu.Lock()
	for _, l := range u.links {
		if l.client != nil {
			l.client.close()
		}
	}
	u.mu.Unlock()
	u.wg.Wait()
	u.rt.Close()
}

// Ready reports whether an interface has its address and a default route
// through it — what a container with needs_network waits for — and,
// when none has, what each is doing.
func (u *Uplink) Ready() (bool, string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var states []string
	for _, l := range u.links {
		if l.ready {
			return true, ""
		}
		states = append(states, l.cfg.label()+": "+l.state)
	}
	return false, strings.Join(states, "; ")
}

// do sends requests in one batch.
func (u *Uplink) do(reqs ...*rtnl.Request) error {
	u.rtMu.Lock()
	defer u.rtMu.Unlock()
	return u.rt.Do(reqs...)
}

// changed tells the caller that a state changed.
func (u *Uplink) changed() {
	if u.cfg.Changed != nil {
		u.cfg.Changed()
	}
}

// sleep waits d, or until Stop: false then.
func (u *Uplink) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-u.stop:
		return false
	}
}

// run configures the interface, and again after a failure, a panic or
// the link's disappearance, until Stop.
func (l *link) run() {
	defer l.u.wg.Done()
	for {
		err := safe.Call("configure", l.configure)
		if errors.Is(err, errStopped) {
			return
		}
		wait := 5 * time.Second
		if errors.Is(err, errLinkGone) {
			wait = time.Second
		}
		l.setState("failed: " + firstLine(err.Error()))
		l.u.cfg.Logf("network: %s: %v; trying again in %s", l.cfg.label(), err, wait)
		if !l.u.sleep(wait) {
			return
		}
	}
}

// configure waits for the link, sets its MTU and brings it up, then
// keeps its static address or DHCP lease until Stop (errStopped) or an
// error.
func (l *link) configure() error {
	ifc, err := l.waitLink()
	if err != nil {
		return err
	}
	l.u.mu.Lock()
	l.name, l.index, l.mac = ifc.Name, ifc.Index, ifc.HardwareAddr
	l.u.mu.Unlock()
	reqs := []*rtnl.Request{rtnl.SetUp(ifc.Index)}
	if l.cfg.MTU > 0 && ifc.MTU != l.cfg.MTU {
		reqs = []*rtnl.Request{rtnl.SetMTU(ifc.Index, l.cfg.MTU), rtnl.SetUp(ifc.Index)}
	}
	if err := l.u.do(reqs...); err != nil {
		return fmt.Errorf("%s: %w", ifc.Name, err)
	}
	if !l.cfg.DHCP {
		return l.configureStatic()
	}
	c, err := newDHCPClient(ifc.Name, ifc.HardwareAddr, l, l.u.stop)
	if err != nil {
		return err
	}
	c.hostname = l.u.cfg.Hostname
	l.u.mu.Lock()
	l.client = c
	l.u.mu.Unlock()
	select {
	case <-l.u.stop: // Stop ran before the client was known
		c.close()
	default:
	}
	defer c.close()
	l.u.cfg.Logf("network: %s: %s is up; asking for a DHCP lease", l.cfg.label(), ifc.Name)
	return c.run()
}

// waitLink returns the link once it exists: a USB adapter or a driver
// that loads late may take a while, and a link renamed after boot
// appears under its new name. It looks every 2 s at most, for as long as
// it takes; nothing waits for it but what needs the network.
func (l *link) waitLink() (*net.Interface, error) {
	start := time.Now()
	for wait, missing := 50*time.Millisecond, false; ; wait = min(wait*2, 2*time.Second) {
		if ifc := findLink(l.cfg); ifc != nil {
			if missing {
				l.u.cfg.Logf("network: %s: appeared as %s after %s", l.cfg.label(), ifc.Name, time.Since(start).Round(time.Millisecond))
			}
			return ifc, nil
		}
		if !missing {
			missing = true
			l.setState("waiting for the link")
			l.u.cfg.Logf("network: %s: no such interface yet; waiting for it", l.cfg.label())
		}
		if !l.u.sleep(wait) {
			return nil, errStopped
		}
	}
}

// findLink finds the configured interface by name or MAC address.
func findLink(ic Interface) *net.Interface {
	if ic.Name != "" {
		ifc, err := net.InterfaceByName(ic.Name)
		if err != nil {
			return nil
		}
		return ifc
	}
	all, _ := net.Interfaces()
	for i := range all {
		if bytes.Equal(all[i].HardwareAddr, ic.MAC) {
			return &all[i]
		}
	}
	return nil
}

// configureStatic sets the configured address and default route, then
// holds them until Stop.
func (l *link) configureStatic() error {
	reqs := []*rtnl.Request{rtnl.AddAddr(l.index, l.cfg.Address, 0)}
	if l.cfg.Gateway.IsValid() {
		reqs = append(reqs, rtnl.AddDefaultRouteMetric(l.index, l.cfg.Gateway, l.metric))
	}
	if err := l.u.do(reqs...); err != nil {
		return fmt.Errorf("%s: %w", l.name, err)
	}
	l.u.mu.Lock()
	l.ready = l.cfg.Gateway.IsValid()
	l.state = "configured"
	if !l.ready {
		l.state = "configured, without a gateway"
	}
	l.u.mu.Unlock()
	l.u.changed()
	gw := "no gateway"
	if l.cfg.Gateway.IsValid() {
		gw = "gateway " + l.cfg.Gateway.String()
	}
	l.u.cfg.Logf("network: %s: %s: %s, %s", l.cfg.label(), l.name, l.cfg.Address, gw)
	<-l.u.stop
	return errStopped
}

// setState records what the interface is doing.
func (l *link) setState(s string) {
	l.u.mu.Lock()
	changed := l.state != s
	l.state = s
	l.u.mu.Unlock()
	if changed {
		l.u.changed()
	}
}

// The leaseHandler of the link's DHCP client.

func (l *link) logf(format string, args ...any)   { l.u.cfg.Logf("network: "+format, args...) }
func (l *link) debugf(format string, args ...any) { l.u.cfg.Debugf("network: "+format, args...) }

// bound applies a lease: the address with the lease's lifetime, so that
// the kernel drops it should berth not renew it; the router as default
// route; DNS and the host name. An extended lease that changed address
// or router replaces the old ones.
func (l *link) bound(nl, old *Lease) {
	if old != nil && old.Address != nl.Address {
		_ = l.u.do(rtnl.DelAddr(l.index, old.Address))
	}
	if old != nil && old.Router.IsValid() && old.Router != nl.Router {
		_ = l.u.do(rtnl.DelDefaultRoute(l.index, old.Router))
	}
	err := l.u.do(rtnl.AddAddr(l.index, nl.Address, leaseLifetime(nl)))
	if err == nil && nl.Router.IsValid() {
		route := rtnl.AddDefaultRouteMetric(l.index, nl.Router, l.metric)
		if !nl.Address.Masked().Contains(nl.Router) {
			route = rtnl.AddDefaultRouteOnLink(l.index, nl.Router, l.metric)
		}
		err = l.u.do(route)
	}
	if err != nil {
		l.logf("%s: applying the lease of %s: %v", l.name, nl.Address, err)
	}
	// Ready once the DNS servers and the host name are in place too: a
	// container that needs the network must find them.
	ready := err == nil && nl.Router.IsValid()
	l.u.mu.Lock()
	l.lease = nl
	l.ready = l.ready && ready
	l.state = "bound"
	if err != nil {
		l.state = "bound, but not applied: " + err.Error()
	}
	l.u.mu.Unlock()
	verb := "lease"
	if old != nil {
		verb = "lease renewed:"
	}
	l.logf("%s: DHCP %s %s from %s for %s: router %s, DNS %v", l.name, verb, nl.Address, nl.Server,
		leaseTime(nl), orNone(nl.Router), nl.DNS)
	if b := l.u.cfg.Bridge; b.IsValid() && nl.Address.Masked().Overlaps(b.Masked()) && (old == nil || old.Address != nl.Address) {
		l.logf("warning: %s: the lease's %s overlaps the containers' bridge subnet %s: their traffic may leave by %s; give [network] bridge another subnet",
			l.name, nl.Address.Masked(), b.Masked(), l.name)
	}
	l.u.applyHostname(nl.Hostname)
	l.u.writeResolv()
	l.u.mu.Lock()
	l.ready = ready
	l.u.mu.Unlock()
	l.u.changed()
}

// lost removes a lease that ended (expired or refused) and what it set.
func (l *link) lost(old *Lease, why string) {
	if old.Router.IsValid() {
		_ = l.u.do(rtnl.DelDefaultRoute(l.index, old.Router))
	}
	_ = l.u.do(rtnl.DelAddr(l.index, old.Address))
	l.u.mu.Lock()
	l.lease, l.ready = nil, false
	l.state = "lease lost"
	l.u.mu.Unlock()
	l.logf("%s: DHCP lease %s lost: %s", l.name, old.Address, why)
	l.u.writeResolv()
	l.u.changed()
}

// leaseLifetime is what is left of a lease, for the address's lifetime:
// 0 (forever) for an infinite lease, at least a second otherwise.
func leaseLifetime(l *Lease) time.Duration {
	if l.Infinite() {
		return 0
	}
	return max(time.Until(l.Expiry()), time.Second)
}

// leaseTime renders a lease's duration.
func leaseTime(l *Lease) string {
	if l.Infinite() {
		return "ever"
	}
	return l.Duration.String()
}

func orNone(a netip.Addr) string {
	if a.IsValid() {
		return a.String()
	}
	return "none"
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// applyHostname names the appliance after a lease when the config does
// not name it.
func (u *Uplink) applyHostname(name string) {
	if u.cfg.Hostname != "" || name == "" {
		return
	}
	u.appliedMu.Lock()
	defer u.appliedMu.Unlock()
	if name == u.hostname {
		return
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		u.cfg.Logf("network: warning: hostname %q from the lease: %v", name, err)
		return
	}
	u.hostname = name
	u.cfg.Logf("network: hostname %s, from the DHCP lease", name)
}
