package board

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"
)

// The registry's files are one line of space-separated fields each,
// parsed strictly: cheaper than JSON for a berth run that reads them once
// (encoding/json's first decode in a process costs some 0.4 ms).
//
//	NAME.entry:   berth-net-entry NAME PID START ADDRESS ATTACHED LINK HOSTNAME PORTS
//	bridge.state: berth-net-bridge BRIDGE PREFIX FORWARD RULES ROUTES
//
// An empty LINK, HOSTNAME, PORTS or FORWARD is "-"; ATTACHED is 0 or 1;
// PORTS are "HOST:CONTAINER/PROTO" joined by commas; RULES is rulesKey's
// hash; ROUTES is "routes" or "-" (absent as an older berth wrote it).

const (
	entryMagic  = "berth-net-entry"
	bridgeMagic = "berth-net-bridge"
)

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func undash(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

// marshal renders the entry's line.
func (e *entry) marshal() []byte {
	ports := make([]string, len(e.Ports))
	for i, p := range e.Ports {
		ports[i] = p.String()
	}
	attached := 0
	if e.Attached {
		attached = 1
	}
	return fmt.Appendf(nil, "%s %s %d %d %s %d %s %s %s\n", entryMagic, e.Name, e.Owner.Pid, e.Owner.Start,
		e.Address, attached, dash(e.Link), dash(e.Hostname), dash(strings.Join(ports, ",")))
}

// parseEntry parses an entry's line; name is the one its file has.
func parseEntry(name string, data []byte) (*entry, error) {
	f := strings.Fields(string(data))
	if len(f) != 9 || f[0] != entryMagic || f[1] != name {
		return nil, fmt.Errorf("not an entry for %s", name)
	}
	e := &entry{Name: name, Link: undash(f[6]), Hostname: undash(f[7])}
	var err error
	if e.Owner.Pid, err = strconv.Atoi(f[2]); err != nil || e.Owner.Pid <= 0 {
		return nil, fmt.Errorf("entry %s: pid %q", name, f[2])
	}
	if e.Owner.Start, err = strconv.ParseUint(f[3], 10, 64); err != nil {
		return nil, fmt.Errorf("entry %s: start %q", name, f[3])
	}
	if e.Address, err = netip.ParseAddr(f[4]); err != nil || !e.Address.Is4() {
		return nil, fmt.Errorf("entry %s: address %q", name, f[4])
	}
	switch f[5] {
	case "0":
	case "1":
		e.Attached = true
	default:
		return nil, fmt.Errorf("entry %s: attached %q", name, f[5])
	}
	if ports := undash(f[8]); ports != "" {
		for _, p := range strings.Split(ports, ",") {
			port, err := parsePort(p)
			if err != nil {
				return nil, fmt.Errorf("entry %s: %v", name, err)
			}
			e.Ports = append(e.Ports, port)
		}
	}
	return e, nil
}

// parsePort parses Port.String's "HOST:CONTAINER/PROTO".
func parsePort(s string) (Port, error) {
	spec, proto, _ := strings.Cut(s, "/")
	host, ctr, _ := strings.Cut(spec, ":")
	h, err1 := strconv.ParseUint(host, 10, 16)
	c, err2 := strconv.ParseUint(ctr, 10, 16)
	if err1 != nil || err2 != nil || h == 0 || c == 0 || (proto != "tcp" && proto != "udp") {
		return Port{}, fmt.Errorf("port %q", s)
	}
	return Port{Host: uint16(h), Container: uint16(c), Proto: proto}, nil
}

// marshal renders bridge.state's line; its last field, "routes" or "-",
// is Routes.
func (st *bridgeState) marshal() []byte {
	routes := ""
	if st.Routes {
		routes = "routes"
	}
	return fmt.Appendf(nil, "%s %s %s %s %s %s\n", bridgeMagic, st.Bridge, st.Prefix, dash(st.Forward), dash(st.Rules), dash(routes))
}

// parseBridgeState parses bridge.state's line: five fields as an older
// berth wrote it, or six.
func parseBridgeState(data []byte) (*bridgeState, error) {
	f := strings.Fields(string(data))
	if (len(f) != 5 && len(f) != 6) || f[0] != bridgeMagic {
		return nil, fmt.Errorf("bridge.state: not berth's")
	}
	if _, err := netip.ParsePrefix(f[2]); err != nil {
		return nil, fmt.Errorf("bridge.state: prefix %q", f[2])
	}
	st := &bridgeState{Bridge: f[1], Prefix: f[2], Forward: undash(f[3]), Rules: undash(f[4])}
	if len(f) == 6 {
		switch f[5] {
		case "routes":
			st.Routes = true
		case "-":
		default:
			return nil, fmt.Errorf("bridge.state: field %q", f[5])
		}
	}
	return st, nil
}

// hashKey shortens a rules key for bridge.state.
func hashKey(key string) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	return strconv.FormatUint(h.Sum64(), 16)
}
