package seccomp

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// A Target is what a program is compiled for.
type Target struct {
	// Arch is the GOARCH the container runs: amd64, arm64, arm or
	// riscv64. Its syscall tables must be linked in (see doc).
	Arch string
	// Caps are the container's effective capabilities, "SYS_ADMIN" or
	// "CAP_SYS_ADMIN", for the profile's includes and excludes.
	Caps []string
	// Kernel is the version minKernel conditions compare with; the zero
	// value means the running kernel.
	Kernel KernelVersion
}

// Compile compiles p for a container of the given GOARCH and effective
// capabilities on the running kernel. It is CompileFor without a kernel
// version.
func (p *Profile) Compile(arch string, caps []string) ([]unix.SockFilter, error) {
	return p.CompileFor(Target{Arch: arch, Caps: caps})
}

// CompileFor compiles p into a classic BPF program for
// SECCOMP_SET_MODE_FILTER. The program checks seccomp_data.arch against
// the target's ABIs (the native one, plus the profile's architectures or
// archMap sub-architectures the platform can run); any other
// architecture kills the process. Then, per ABI:
//
//   - a system call a rule names gets that rule's action (see planSyscall
//     for several rules on one call);
//   - a number in the ABI's syscall table the profile does not name gets
//     the default action;
//   - a number the table does not know (above its highest, or between
//     ARM's ordinary and private calls) fails with ENOSYS, so a libc newer
//     than this table falls back to an older call, unless the default
//     action is allow or log, which such numbers then get;
//   - on x86_64, an x32 call (bit 30 of the number set) fails with ENOSYS
//     unless the profile lists SCMP_ARCH_X32.
//
// Names an ABI does not have are skipped.
func (p *Profile) CompileFor(t Target) ([]unix.SockFilter, error) {
	prog, err := p.compile(t)
	if err != nil {
		return nil, fmt.Errorf("seccomp: compile for %s: %w", t.Arch, err)
	}
	return prog, nil
}

func (p *Profile) compile(t Target) ([]unix.SockFilter, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if t.Kernel == (KernelVersion{}) {
		k, err := RunningKernel()
		if err != nil {
			return nil, err
		}
		t.Kernel = k
	}
	sections, err := p.sections(t.Arch)
	if err != nil {
		return nil, err
	}
	caps := map[string]bool{}
	for _, c := range t.Caps {
		caps[capName(c)] = true
	}
	var inForce []namedRule
	for i := range p.Syscalls {
		if s := &p.Syscalls[i]; s.appliesTo(t.Arch, caps, t.Kernel) {
			inForce = append(inForce, newNamedRule(s))
		}
	}
	c := compiler{b: newBuilder(), chains: map[string]*chain{}}
	c.defaultRet, _ = ret(p.DefaultAction, p.DefaultErrnoRet) // validated
	c.unknownRet = retENOSYS
	if c.defaultRet == retAllow || c.defaultRet == retLog {
		c.unknownRet = c.defaultRet
	}
	entries := make([]label, len(sections))
	for i := len(sections) - 1; i >= 0; i-- {
		if entries[i], err = c.section(sections[i], inForce); err != nil {
			return nil, err
		}
	}
	next := c.b.ret(retKillProcess)
	for i := len(sections) - 1; i >= 0; i-- {
		next = c.b.jump(unix.BPF_JEQ, sections[i].audit, entries[i], next)
	}
	c.b.load(offArch, next)
	prog := c.b.program()
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("program has %d instructions, the kernel takes at most %d", len(prog), unix.BPF_MAXINSNS)
	}
	return prog, nil
}

// A section is the part of the program for one seccomp_data.arch value:
// its ABIs (x86_64 and x32 share one), in increasing number order, and
// whether x32 is refused.
type section struct {
	audit uint32
	abis  []abi
	noX32 bool
}

// sections lists the ABIs the program accepts on arch, native first.
func (p *Profile) sections(arch string) ([]section, error) {
	pf, ok := platforms[arch]
	if !ok {
		return nil, fmt.Errorf("unsupported GOARCH %q (have amd64, arm64, arm, riscv64)", arch)
	}
	wanted := p.Architectures
	for _, m := range p.ArchMap {
		if m.Arch == pf.native {
			wanted = m.SubArches
		}
	}
	var out []section
	for _, name := range append([]string{pf.native}, pf.others...) {
		if name != pf.native && !slices.Contains(wanted, name) {
			continue
		}
		a, _ := abiByName(name)
		if _, ok := tables()[a.table]; !ok {
			return nil, fmt.Errorf("no %s syscall table in this binary (it carries those of its own GOARCH)", a.table)
		}
		i := slices.IndexFunc(out, func(s section) bool { return s.audit == a.audit })
		if i < 0 {
			out = append(out, section{audit: a.audit})
			i = len(out) - 1
		}
		out[i].abis = append(out[i].abis, a)
	}
	if pf.native == "SCMP_ARCH_X86_64" {
		out[0].noX32 = !slices.ContainsFunc(out[0].abis, func(a abi) bool { return a.scmp == "SCMP_ARCH_X32" })
	}
	return out, nil
}

// A compiler holds the state of one compilation.
type compiler struct {
	b          *builder
	defaultRet uint32            // for known numbers no rule names
	unknownRet uint32            // for numbers outside the tables
	chains     map[string]*chain // argument tests, shared by identical plans
}

// x32Bit marks an x32 system call number on x86_64.
const x32Bit = 0x40000000

// section writes one section: load the number, then search it among
// intervals of numbers with the same outcome.
func (c *compiler) section(s section, inForce []namedRule) (label, error) {
	var numbered []numberedOutcome
	var spans []span
	for _, a := range s.abis {
		table := tables()[a.table]
		numbered = append(numbered, c.resolve(a, table, inForce)...)
		for _, r := range table.ranges {
			spans = append(spans, span{lo: r[0], hi: r[1], fill: outcome{ret: c.defaultRet}})
		}
	}
	if s.noX32 {
		spans = append(spans, span{lo: x32Bit, hi: 1<<32 - 1, fill: outcome{ret: retENOSYS}})
	}
	iv, err := buildIntervals(spans, numbered, outcome{ret: c.unknownRet})
	if err != nil {
		return 0, err
	}
	return c.b.load(offNr, c.search(iv)), nil
}

// A namedRule is a rule in force with the system call names it covers.
type namedRule struct {
	names []string
	rule  rule
}

func newNamedRule(s *Syscall) namedRule {
	r, _ := ret(s.Action, s.ErrnoRet) // validated
	conds := make([]cond, len(s.Args))
	for i, a := range s.Args {
		conds[i] = cond{arg: int(a.Index), op: a.Op, v: a.Value, w: a.ValueTwo}
	}
	return namedRule{names: s.allNames(), rule: rule{ret: r, conds: conds}}
}

// A numberedOutcome is what the filter does with system call nr.
type numberedOutcome struct {
	nr  uint32
	out outcome
}

// resolve returns, sorted by number, what ABI a does with each number a
// rule in force names.
func (c *compiler) resolve(a abi, table syscallTable, inForce []namedRule) []numberedOutcome {
	// The rules naming each table entry, as lists threaded through
	// next; positions in rules follow the profile's order.
	head := make([]int32, len(table.names))
	tail := make([]int32, len(table.names))
	total := 0
	for _, nr := range inForce {
		total += len(nr.names)
	}
	rules := make([]rule, 0, total)
	next := make([]int32, 0, total)
	for _, nr := range inForce {
		for _, name := range nr.names {
			i, ok := table.index(name)
			if !ok {
				continue
			}
			rules = append(rules, nr.rule)
			next = append(next, 0)
			if head[i] == 0 {
				head[i] = int32(len(rules))
			} else {
				next[tail[i]-1] = int32(len(rules))
			}
			tail[i] = int32(len(rules))
		}
	}
	out := make([]numberedOutcome, 0, len(rules))
	var positions []int32
	var group []rule
	for k := 0; k < len(table.byNr); {
		// Aliases (ARM's sync_file_range2 and arm_sync_file_range)
		// are entries with one number: their rules form one group.
		nr := table.nrs[table.byNr[k]]
		positions = positions[:0]
		for ; k < len(table.byNr) && table.nrs[table.byNr[k]] == nr; k++ {
			for p := head[table.byNr[k]]; p != 0; p = next[p-1] {
				positions = append(positions, p)
			}
		}
		if len(positions) == 0 {
			continue
		}
		insertionSort(positions, func(a, b int32) bool { return a < b })
		group = group[:0]
		for _, p := range positions {
			if n := len(group); n > 0 && sameRule(group[n-1], rules[p-1]) {
				continue // one rule naming the call twice
			}
			group = append(group, rules[p-1])
		}
		out = append(out, numberedOutcome{nr, c.outcomeOf(planSyscall(group, a.bits, c.defaultRet), a.bits)})
	}
	return out
}

// sameRule reports whether a and b come from the same profile rule.
func sameRule(a, b rule) bool {
	return a.ret == b.ret && len(a.conds) == len(b.conds) && (len(a.conds) == 0 || &a.conds[0] == &b.conds[0])
}
