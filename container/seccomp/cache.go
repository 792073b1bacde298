package seccomp

import (
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// cacheSize bounds a Cache; past it, the cache starts over.
const cacheSize = 64

// A Cache compiles each (profile, target) once. Targets whose capabilities
// differ only in ones the profile never mentions share a program. Profiles
// are told apart by pointer, so a profile must not change once a Cache
// has seen it. The zero Cache is ready; it is safe for concurrent use.
type Cache struct {
	mu    sync.Mutex
	progs map[cacheKey][]unix.SockFilter
}

type cacheKey struct {
	profile *Profile
	arch    string
	caps    string // the target's capabilities the profile mentions, sorted
	kernel  KernelVersion
}

// Compile returns p.CompileFor(t), compiled on first use. The program is
// the caller's to keep.
func (c *Cache) Compile(p *Profile, t Target) ([]unix.SockFilter, error) {
	if t.Kernel == (KernelVersion{}) {
		k, err := RunningKernel()
		if err != nil {
			return nil, err
		}
		t.Kernel = k
	}
	key := cacheKey{profile: p, arch: t.Arch, caps: p.relevantCaps(t.Caps), kernel: t.Kernel}
	c.mu.Lock()
	prog, ok := c.progs[key]
	c.mu.Unlock()
	if ok {
		return slices.Clone(prog), nil
	}
	prog, err := p.CompileFor(t)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.progs == nil || len(c.progs) >= cacheSize {
		c.progs = map[cacheKey][]unix.SockFilter{}
	}
	c.progs[key] = prog
	c.mu.Unlock()
	return slices.Clone(prog), nil
}

// relevantCaps returns those of caps the profile's rules mention, sorted
// and joined: the part of a target's capabilities a program depends on.
func (p *Profile) relevantCaps(caps []string) string {
	mentioned := map[string]bool{}
	for _, s := range p.Syscalls {
		for _, f := range []*Filter{s.Includes, s.Excludes} {
			if f != nil {
				for _, c := range f.Caps {
					mentioned[capName(c)] = true
				}
			}
		}
	}
	var held []string
	for _, c := range caps {
		if n := capName(c); mentioned[n] {
			held = append(held, n)
		}
	}
	slices.Sort(held)
	return strings.Join(slices.Compact(held), ",")
}
