package container

import (
	"fmt"
	"strconv"
	"strings"
)

// Port is a published port: Host on every address of the appliance (and
// 127.0.0.1 on the appliance itself) reaches Container in the container.
type Port struct {
	Host      uint16 `json:"host"`
	Container uint16 `json:"container"`
	// Proto is "tcp" or "udp".
	Proto string `json:"proto"`
}

func (p Port) String() string { return fmt.Sprintf("%d:%d/%s", p.Host, p.Container, p.Proto) }

// ParsePort parses "HOST:CONTAINER[/tcp|/udp]", e.g. "8080:80" or
// "5353:53/udp"; ports are 1-65535, the protocol tcp by default.
func ParsePort(s string) (Port, error) {
	const want = `want "HOST:CONTAINER" or "HOST:CONTAINER/udp", ports 1-65535`
	spec, proto, hasProto := strings.Cut(s, "/")
	p := Port{Proto: "tcp"}
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return p, fmt.Errorf("%s: protocol %s: want tcp or udp", Quote(s), Quote(proto))
		}
		p.Proto = proto
	}
	host, ctr, ok := strings.Cut(spec, ":")
	if !ok {
		return p, fmt.Errorf("%s: %s", Quote(s), want)
	}
	for _, f := range []struct {
		text string
		dst  *uint16
	}{{host, &p.Host}, {ctr, &p.Container}} {
		n, err := strconv.ParseUint(f.text, 10, 16)
		if err != nil || n == 0 {
			return p, fmt.Errorf("%s: port %s: %s", Quote(s), Quote(f.text), want)
		}
		*f.dst = uint16(n)
	}
	return p, nil
}

// PublishedPorts returns the spec's ports, parsed; Validate has checked
// them, so one that does not parse is left out.
func (s *Spec) PublishedPorts() []Port {
	var out []Port
	for _, text := range s.Ports {
		if p, err := ParsePort(text); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// ports checks the spec's published ports: their syntax, that a host
// port is published once per protocol, and that they come with a bridge.
func (c *specCheck) ports(s *Spec) {
	if len(s.Ports) > 0 && s.Net != "bridge" {
		c.add("ports", -1, "publishing ports needs net = \"bridge\"")
	}
	if len(s.Ports) > MaxPorts {
		c.add("ports", -1, "%d ports: at most %d", len(s.Ports), MaxPorts)
		return
	}
	seen := map[string]int{}
	for i, text := range s.Ports {
		p, err := ParsePort(text)
		if err != nil {
			c.add("ports", i, "%v", err)
			continue
		}
		key := fmt.Sprintf("%d/%s", p.Host, p.Proto)
		if j, dup := seen[key]; dup {
			c.add("ports", i, "host port %s is published twice: %s and %s", key, Quote(s.Ports[j]), Quote(text))
			continue
		}
		seen[key] = i
	}
}
