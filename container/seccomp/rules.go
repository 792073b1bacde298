package seccomp

import (
	"slices"
	"strings"
)

// capName normalizes a capability name: "cap_sys_admin" → "SYS_ADMIN".
func capName(s string) string {
	return strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "CAP_")
}

// appliesTo reports whether the rule is in force for the target, with
// moby's semantics: excludes drops it when the GOARCH is listed, any
// listed capability is held or the kernel is at least minKernel; includes
// keeps it only when the GOARCH is listed, every listed capability is
// held and the kernel is at least minKernel.
func (s *Syscall) appliesTo(arch string, caps map[string]bool, kernel KernelVersion) bool {
	if f := s.Excludes; f != nil {
		if slices.Contains(f.Arches, arch) {
			return false
		}
		for _, c := range f.Caps {
			if caps[capName(c)] {
				return false
			}
		}
		if f.MinKernel != nil && kernel.AtLeast(*f.MinKernel) {
			return false
		}
	}
	if f := s.Includes; f != nil {
		if len(f.Arches) > 0 && !slices.Contains(f.Arches, arch) {
			return false
		}
		for _, c := range f.Caps {
			if !caps[capName(c)] {
				return false
			}
		}
		if f.MinKernel != nil && !kernel.AtLeast(*f.MinKernel) {
			return false
		}
	}
	return true
}

// A rule is a profile rule for one system call of one ABI: when every
// cond holds, the filter returns ret.
type rule struct {
	ret   uint32
	conds []cond
}

// A plan is what the filter does with one system call: try rules in
// order, the first whose conds all hold decides; if none, return fallback.
type plan struct {
	rules    []rule
	fallback uint32
}

// planSyscall orders the rules naming one system call. Rules with
// argument conditions come first, the more restrictive action first (the
// kernel's order among stacked filters: kill, trap, errno, trace, log,
// allow) and in profile order among equals; then the most restrictive
// unconditional rule, or else the default action. So a conditional rule
// refines an unconditional one for the same call whatever their order in
// the file, and when two conditional rules both match the stricter wins.
func planSyscall(rules []rule, argBits int, defaultRet uint32) plan {
	p := plan{fallback: defaultRet}
	unconditional := false
	for _, r := range rules {
		conds, ok := foldAll(r.conds, argBits)
		switch {
		case !ok:
			continue
		case len(r.conds) > 0:
			p.rules = append(p.rules, rule{ret: r.ret, conds: conds})
		case !unconditional || precedence(r.ret) > precedence(p.fallback):
			p.fallback = r.ret
			unconditional = true
		}
	}
	insertionSort(p.rules, func(a, b rule) bool { return precedence(a.ret) > precedence(b.ret) })
	// A rule whose conditions always hold ends the list.
	if i := slices.IndexFunc(p.rules, func(r rule) bool { return len(r.conds) == 0 }); i >= 0 {
		p.fallback = p.rules[i].ret
		p.rules = p.rules[:i]
	}
	// Trailing rules that return the fallback anyway change nothing.
	for len(p.rules) > 0 && p.rules[len(p.rules)-1].ret == p.fallback {
		p.rules = p.rules[:len(p.rules)-1]
	}
	return p
}

// insertionSort sorts s stably by less: the lists here are short, and
// this keeps the binary free of a generic sort per element type.
func insertionSort[T any](s []T, less func(a, b T) bool) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && less(s[j], s[j-1]); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// foldAll folds a rule's conds; ok is false if the rule can never match.
func foldAll(conds []cond, argBits int) (folded []cond, ok bool) {
	for _, c := range conds {
		c, t := c.fold(argBits)
		switch t {
		case never:
			return nil, false
		case depends:
			folded = append(folded, c)
		}
	}
	return folded, true
}

// groups splits the plan's rules into runs the code generator tests as one
// disjunction (testAny): rules with one cond each, on the same argument,
// with the same action, whose values' high words are zero.
func (p plan) groups(argBits int) [][]rule {
	var out [][]rule
	for _, r := range p.rules {
		if n := len(out); n > 0 && joinable(out[n-1][0], r, argBits) {
			out[n-1] = append(out[n-1], r)
			continue
		}
		out = append(out, []rule{r})
	}
	return out
}

func joinable(first, r rule, argBits int) bool {
	single := func(r rule) bool {
		return len(r.conds) == 1 && (argBits == 32 || r.conds[0].highIsZeroTest())
	}
	return single(first) && single(r) && first.ret == r.ret && first.conds[0].arg == r.conds[0].arg
}
