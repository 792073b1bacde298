package seccomp

import (
	"errors"
	"fmt"
	"slices"
)

// maxArgs is the number of system call arguments in seccomp_data.
const maxArgs = 6

// Validate checks what can be checked without a target: action, operator,
// architecture and flag names, argument indexes and errno values. Load and
// Compile call it; the error names the offending field.
func (p *Profile) Validate() error {
	if _, err := ret(p.DefaultAction, p.DefaultErrnoRet); err != nil {
		return fmt.Errorf("defaultAction: %w", err)
	}
	if p.ListenerPath != "" {
		return fmt.Errorf("listenerPath: %s is not supported", ActNotify)
	}
	if len(p.Architectures) > 0 && len(p.ArchMap) > 0 {
		return errors.New("both architectures and archMap are set; use one")
	}
	for i, a := range p.Architectures {
		if !slices.Contains(scmpArches, a) {
			return fmt.Errorf("architectures[%d]: unknown architecture %q", i, a)
		}
	}
	for i, m := range p.ArchMap {
		for _, a := range append([]string{m.Arch}, m.SubArches...) {
			if !slices.Contains(scmpArches, a) {
				return fmt.Errorf("archMap[%d]: unknown architecture %q", i, a)
			}
		}
	}
	if _, err := p.FilterFlags(); err != nil {
		return err
	}
	for i := range p.Syscalls {
		s := &p.Syscalls[i]
		if err := s.validate(); err != nil {
			return fmt.Errorf("syscalls[%d]%s: %w", i, s.label(), err)
		}
	}
	return nil
}

// label names a rule in errors by its first syscall name.
func (s *Syscall) label() string {
	names := s.allNames()
	if len(names) == 0 {
		return ""
	}
	if len(names) == 1 {
		return fmt.Sprintf(" (%s)", names[0])
	}
	return fmt.Sprintf(" (%s, ...)", names[0])
}

func (s *Syscall) validate() error {
	if s.Name != "" && len(s.Names) > 0 {
		return errors.New("both name and names are set; use one")
	}
	names := s.allNames()
	if len(names) == 0 {
		return errors.New("names is empty")
	}
	if slices.Contains(names, "") {
		return errors.New("empty syscall name")
	}
	if _, err := ret(s.Action, s.ErrnoRet); err != nil {
		return fmt.Errorf("action: %w", err)
	}
	for j, a := range s.Args {
		if a.Index >= maxArgs {
			return fmt.Errorf("args[%d]: index %d is out of range 0-%d", j, a.Index, maxArgs-1)
		}
		if a.Op == "" {
			return fmt.Errorf("args[%d]: op is missing", j)
		}
		if !slices.Contains(operators, a.Op) {
			return fmt.Errorf("args[%d]: unknown op %q", j, a.Op)
		}
	}
	for _, f := range []struct {
		name   string
		filter *Filter
	}{{"includes", s.Includes}, {"excludes", s.Excludes}} {
		if f.filter == nil {
			continue
		}
		if slices.Contains(f.filter.Caps, "") || slices.Contains(f.filter.Arches, "") {
			return fmt.Errorf("%s: empty capability or architecture name", f.name)
		}
	}
	return nil
}
