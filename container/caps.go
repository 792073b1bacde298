package container

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
)

// DefaultCaps are the capabilities a container gets unless its config
// adds or drops some: containerd's default set without MKNOD (berth
// makes /dev's nodes itself), NET_RAW (raw packets: spoofing on the
// bridge), SETFCAP, SYS_CHROOT and AUDIT_WRITE.
var DefaultCaps = []string{
	"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE", "KILL",
}

// capByNameInit computes capByName's value, once.
func capByNameInit() map[string]capability.Cap {
	m := map[string]capability.Cap{}
	for _, c := range capability.ListKnown() {
		m[strings.ToUpper(c.String())] = c
	}
	return m
}

// capByNameOnce holds its result: a sync.OnceValue variable would be init
// code run in every berth process; a sync.Once is data.
var capByNameOnce struct {
	sync.Once
	v map[string]capability.Cap
}

// capByName maps capabilities(7) names without CAP_ ("NET_ADMIN") to caps.
func capByName() map[string]capability.Cap {
	capByNameOnce.Do(func() { capByNameOnce.v = capByNameInit() })
	return capByNameOnce.v
}

// ResolveCaps returns the container's capability names: the defaults,
// minus drop, plus add. "ALL" in drop starts from none; "ALL" in add gives
// every capability. What it returns is never nil: an empty list is no
// capability at all, where a nil Spec.Caps is DefaultCaps. Names are capabilities(7) names without CAP_, in any
// case; an unknown name is an error.
func ResolveCaps(add, drop []string) ([]string, error) {
	norm := func(list []string, what string) ([]string, bool, error) {
		var out []string
		all := false
		for _, n := range list {
			u := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(n)), "CAP_")
			if u == "ALL" {
				all = true
				continue
			}
			if _, ok := capByName()[u]; !ok {
				return nil, false, fmt.Errorf("%s: unknown capability %q", what, n)
			}
			out = append(out, u)
		}
		return out, all, nil
	}
	addN, addAll, err := norm(add, "cap_add")
	if err != nil {
		return nil, err
	}
	dropN, dropAll, err := norm(drop, "cap_drop")
	if err != nil {
		return nil, err
	}
	set := []string{} // none is not nil: nil asks for DefaultCaps (Spec.Caps)
	if !dropAll {
		for _, c := range DefaultCaps {
			if !slices.Contains(dropN, c) {
				set = append(set, c)
			}
		}
	}
	if addAll {
		// Every capability berth itself may hand out: those in its own
		// bounding set.
		set = set[:0]
		for n, c := range capByName() {
			if ok, err := capability.GetBound(c); err == nil && ok {
				set = append(set, n)
			}
		}
	}
	for _, c := range addN {
		if !slices.Contains(set, c) {
			set = append(set, c)
		}
	}
	slices.Sort(set)
	return set, nil
}

// capList converts names to capabilities.
func capList(names []string) ([]capability.Cap, error) {
	var list []capability.Cap
	for _, n := range names {
		c, ok := capByName()[n]
		if !ok {
			return nil, fmt.Errorf("capabilities: unknown capability %q", n)
		}
		list = append(list, c)
	}
	return list, nil
}

// threadCaps returns the calling thread's capability state, cleared in
// kinds, and names as capabilities.
func threadCaps(names []string, kinds capability.CapType) (capability.Capabilities, []capability.Cap, error) {
	list, err := capList(names)
	if err != nil {
		return nil, nil, err
	}
	caps, err := capability.NewPid2(0)
	if err != nil {
		return nil, nil, fmt.Errorf("capabilities: %w", err)
	}
	caps.Clear(kinds)
	return caps, list, nil
}

// dropBounding cuts the calling thread's bounding set to names. It needs
// CAP_SETPCAP, so it runs before the switch to the workload's user.
func dropBounding(names []string) error {
	caps, list, err := threadCaps(names, capability.BOUNDS)
	if err != nil {
		return err
	}
	caps.Set(capability.BOUNDING, list...)
	if err := caps.Apply(capability.BOUNDS); err != nil {
		return fmt.Errorf("drop bounding capabilities to %v: %w", names, err)
	}
	return nil
}

// applyCaps makes names the calling thread's permitted and effective sets,
// and empties its inheritable and ambient sets (as containerd does since
// CVE-2022-24769: a non-root workload gains no capability through exec).
// It must run on the thread that calls execve.
func applyCaps(names []string) error {
	caps, list, err := threadCaps(names, capability.CAPS|capability.AMBS)
	if err != nil {
		return err
	}
	caps.Set(capability.PERMITTED|capability.EFFECTIVE, list...)
	if err := caps.Apply(capability.CAPS | capability.AMBS); err != nil {
		return fmt.Errorf("apply capabilities %v: %w", names, err)
	}
	return nil
}
