package board

import (
	"fmt"
	"strings"
)

// What an attach refuses: a name, or a host port, that another attached
// container has already.

// namesFree refuses a name or hostname another attached container has
// as its name or hostname, in any case: the hosts files map each to one
// address, looked up whatever its case, and the first line would win, so
// a container could take another's name.
func namesFree(r *registry, e Endpoint) error {
	for _, o := range r.attached() {
		if o.Name == e.Name {
			continue
		}
		for _, mine := range [...]string{e.Name, e.Hostname} {
			// A hosts file's names match whatever their case.
			if mine != "" && (strings.EqualFold(mine, o.Name) || strings.EqualFold(mine, o.Hostname)) {
				return fmt.Errorf("container %s: the name %s is container %s's name or hostname on the bridge already", e.Name, mine, o.Name)
			}
		}
	}
	return nil
}

// portsFree refuses a host port another attached container publishes.
func portsFree(r *registry, e Endpoint) error {
	for _, o := range r.attached() {
		if o.Name == e.Name {
			continue
		}
		for _, p := range e.Ports {
			for _, q := range o.Ports {
				if p.Host == q.Host && p.Proto == q.Proto {
					return fmt.Errorf("port %d/%s is published by container %s already", p.Host, p.Proto, o.Name)
				}
			}
		}
	}
	return nil
}
