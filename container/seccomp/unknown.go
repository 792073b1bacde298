package seccomp

import (
	"fmt"
	"slices"
)

// UnknownSyscalls lists, sorted, the system call names of the rules in
// force for t (see CompileFor) that no ABI berth knows has, on any
// platform: a profile written for a newer kernel than berth's tables, or
// a typo. Compile skips them, as it skips the names of other platforms'
// calls (Docker's default profile lists every platform's); berth warns
// of them. Rules that do not apply to t (an includes of other
// architectures, say) are not looked at.
func (p *Profile) UnknownSyscalls(t Target) ([]string, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	if t.Kernel == (KernelVersion{}) {
		k, err := RunningKernel()
		if err != nil {
			return nil, err
		}
		t.Kernel = k
	}
	caps := map[string]bool{}
	for _, c := range t.Caps {
		caps[capName(c)] = true
	}
	var out []string
	for i := range p.Syscalls {
		s := &p.Syscalls[i]
		if !s.appliesTo(t.Arch, caps, t.Kernel) {
			continue
		}
		for _, name := range s.allNames() {
			if !knownName(name) && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}
