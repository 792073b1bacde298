package board

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// InterfaceStatus is one interface as berth status shows it: the
// addresses and gateway are read from the kernel, the rest is the
// uplink's own state.
type InterfaceStatus struct {
	// Config is how the config names it: "eth0" or "mac 52:54:...".
	Config string `json:"config"`
	// Name and MAC are the link's, once found.
	Name   string `json:"name,omitempty"`
	MAC    string `json:"mac,omitempty"`
	Method string `json:"method"` // "dhcp" or "static"
	// State is "waiting for the link", "selecting", "bound",
	// "configured"...
	State string `json:"state"`
	// Ready is set when it has its address and a default route.
	Ready     bool     `json:"ready"`
	Up        bool     `json:"up"`
	Carrier   bool     `json:"carrier"`
	MTU       int      `json:"mtu,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
	Gateway   string   `json:"gateway,omitempty"`
	// DNS are its servers: the configured ones, then the lease's.
	DNS   []string     `json:"dns,omitempty"`
	Lease *LeaseStatus `json:"lease,omitempty"`
}

// LeaseStatus is a DHCP lease as berth status shows it.
type LeaseStatus struct {
	Address  string    `json:"address"`
	Server   string    `json:"server"`
	Router   string    `json:"router,omitempty"`
	DNS      []string  `json:"dns,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	Domain   string    `json:"domain,omitempty"`
	Obtained time.Time `json:"obtained"`
	// Seconds is the lease time, 0 for an infinite lease, which has no
	// renewal nor expiry.
	Seconds      int64      `json:"lease_seconds"`
	Renew        *time.Time `json:"renew,omitempty"`
	Rebind       *time.Time `json:"rebind,omitempty"`
	Expires      *time.Time `json:"expires,omitempty"`
	ExpiresInSec float64    `json:"expires_in_seconds,omitempty"`
}

// Status reports every configured interface.
func (u *Uplink) Status() []InterfaceStatus {
	gateways := defaultGateways(routeFile)
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []InterfaceStatus
	for _, l := range u.links {
		st := InterfaceStatus{Config: l.cfg.label(), Name: l.name, Method: "static", State: l.state, Ready: l.ready}
		if l.cfg.DHCP {
			st.Method = "dhcp"
		}
		if l.name != "" {
			if ifc, err := net.InterfaceByName(l.name); err == nil {
				st.MAC, st.MTU = ifc.HardwareAddr.String(), ifc.MTU
				st.Up, st.Carrier = ifc.Flags&net.FlagUp != 0, ifc.Flags&net.FlagRunning != 0
				addrs, _ := ifc.Addrs()
				for _, a := range addrs {
					st.Addresses = append(st.Addresses, a.String())
				}
			}
			st.Gateway = gateways[l.name]
		}
		for _, d := range l.dns() {
			st.DNS = append(st.DNS, d.String())
		}
		if l.lease != nil {
			st.Lease = leaseStatus(l.lease)
		}
		out = append(out, st)
	}
	return out
}

// dns lists the interface's DNS servers: configured, then the lease's.
// The caller holds Uplink.mu.
func (l *link) dns() []netip.Addr {
	out := append([]netip.Addr(nil), l.cfg.DNS...)
	if l.lease != nil {
		out = append(out, l.lease.DNS...)
	}
	return out
}

func leaseStatus(l *Lease) *LeaseStatus {
	ls := &LeaseStatus{
		Address: l.Address.String(), Server: l.Server.String(), Hostname: l.Hostname, Domain: l.Domain,
		Obtained: l.Start.Round(0), Seconds: int64(l.Duration / time.Second),
	}
	if l.Router.IsValid() {
		ls.Router = l.Router.String()
	}
	for _, d := range l.DNS {
		ls.DNS = append(ls.DNS, d.String())
	}
	if !l.Infinite() {
		renew, rebind, exp := l.RenewAt().Round(0), l.RebindAt().Round(0), l.Expiry().Round(0)
		ls.Renew, ls.Rebind, ls.Expires = &renew, &rebind, &exp
		ls.ExpiresInSec = time.Until(l.Expiry()).Seconds()
	}
	return ls
}

// routeFile is /proc/net/route of the calling thread's network namespace:
// /proc/net is the main thread's, which a test may have moved.
const routeFile = "/proc/thread-self/net/route"

// defaultGateways reads the default routes of the kernel's main table
// from a /proc/net/route file: interface name → gateway (the first, with
// the lowest metric, when there are several).
func defaultGateways(path string) map[string]string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	best := map[string]int64{}
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		f := strings.Fields(line)
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		flags, _ := strconv.ParseUint(f[3], 16, 32)
		gw, err1 := strconv.ParseUint(f[2], 16, 32)
		metric, err2 := strconv.ParseInt(f[6], 10, 64)
		if flags&0x2 == 0 || err1 != nil || err2 != nil { // RTF_GATEWAY
			continue
		}
		if m, ok := best[f[0]]; ok && m <= metric {
			continue
		}
		// The address is printed as the number its bytes make in
		// memory: in the machine's byte order.
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], uint32(gw))
		best[f[0]], out[f[0]] = metric, netip.AddrFrom4(b).String()
	}
	return out
}

// Limits of resolv.conf as the C libraries read it.
const (
	maxNameservers = 3 // MAXNS of glibc and musl
	maxSearch      = 6
)

// resolvConf renders resolv.conf for the interfaces' DNS servers, in
// config order, each interface's configured ones before its lease's, and
// the leases' domains as the search list.
func resolvConf(servers []netip.Addr, domains []string) string {
	var b strings.Builder
	b.WriteString("# written by berth from [[network.interface]] and DHCP leases\n")
	if len(domains) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(domains, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return b.String()
}

// writeResolv writes the resolv.conf of the current state, atomically
// (a new file renamed over the old one), when it changed.
func (u *Uplink) writeResolv() {
	var servers []netip.Addr
	var domains []string
	u.mu.Lock()
	for _, l := range u.links {
		for _, d := range l.dns() {
			if len(servers) < maxNameservers && !slices.Contains(servers, d) {
				servers = append(servers, d)
			}
		}
		if l.lease != nil && l.lease.Domain != "" && len(domains) < maxSearch && !slices.Contains(domains, l.lease.Domain) {
			domains = append(domains, l.lease.Domain)
		}
	}
	u.mu.Unlock()
	u.appliedMu.Lock()
	defer u.appliedMu.Unlock()
	content := resolvConf(servers, domains)
	if content == u.lastResolv || u.lastResolv == "" && len(servers) == 0 && len(domains) == 0 {
		return
	}
	if err := writeAtomic(u.cfg.ResolvConf, []byte(content), 0o644); err != nil {
		u.cfg.Logf("network: warning: %v", err)
		return
	}
	u.lastResolv = content
	u.cfg.Debugf("network: %s: nameservers %v, search %v", u.cfg.ResolvConf, servers, domains)
}

// writeAtomic replaces path with data: a reader sees the old file or the
// new one, never a part.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // after a successful rename, there is none
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
