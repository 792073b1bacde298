package seccomp

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// reference decides a call straight from the profile, as CompileFor
// documents, without BPF. The generated programs must agree with it.
func reference(t testing.TB, p *Profile, tgt Target, c call) uint32 {
	t.Helper()
	sections, err := p.sections(tgt.Arch)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(sections, func(s section) bool { return s.audit == c.arch })
	if i < 0 {
		return retKillProcess
	}
	sec := sections[i]
	defaultRet, _ := ret(p.DefaultAction, p.DefaultErrnoRet)
	unknownRet := uint32(retENOSYS)
	if defaultRet == retAllow || defaultRet == retLog {
		unknownRet = defaultRet
	}

	var names []string
	var argBits int
	for _, a := range sec.abis {
		table := tables()[a.table]
		for j, nr := range table.nrs {
			if nr == c.nr {
				names = append(names, table.names[j])
				argBits = a.bits
			}
		}
	}
	if len(names) == 0 {
		if sec.noX32 && c.nr >= x32Bit {
			return retENOSYS
		}
		for _, a := range sec.abis {
			for _, r := range tables()[a.table].ranges {
				if r[0] <= c.nr && c.nr <= r[1] {
					return defaultRet
				}
			}
		}
		return unknownRet
	}

	caps := map[string]bool{}
	for _, name := range tgt.Caps {
		caps[capName(name)] = true
	}
	type match struct {
		ret     uint32
		matches bool
	}
	var conditional []match
	unconditional, haveUnconditional := defaultRet, false
	for _, s := range p.Syscalls {
		if !s.appliesTo(tgt.Arch, caps, tgt.Kernel) || !slices.ContainsFunc(s.allNames(), func(n string) bool { return slices.Contains(names, n) }) {
			continue
		}
		r, _ := ret(s.Action, s.ErrnoRet)
		if len(s.Args) == 0 {
			if !haveUnconditional || precedence(r) > precedence(unconditional) {
				unconditional, haveUnconditional = r, true
			}
			continue
		}
		all := true
		for _, a := range s.Args {
			all = all && argHolds(a, c.args, argBits)
		}
		conditional = append(conditional, match{r, all})
	}
	slices.SortStableFunc(conditional, func(a, b match) int { return precedence(b.ret) - precedence(a.ret) })
	for _, m := range conditional {
		if m.matches {
			return m.ret
		}
	}
	return unconditional
}

// argHolds compares an argument as the kernel passes it: whole on 64-bit
// ABIs, its low word on 32-bit ones.
func argHolds(a Arg, args [6]uint64, argBits int) bool {
	x, v := args[a.Index], a.Value
	if argBits == 32 {
		x &= math.MaxUint32
	}
	switch a.Op {
	case OpNotEqual:
		return x != v
	case OpLessThan:
		return x < v
	case OpLessEqual:
		return x <= v
	case OpEqualTo:
		return x == v
	case OpGreaterEqual:
		return x >= v
	case OpGreaterThan:
		return x > v
	}
	return x&v == a.ValueTwo
}

// edgeValues are argument values around every boundary the compiler
// treats specially: zero, 32-bit limits, high words, the 64-bit limit.
var edgeValues = []uint64{
	0, 1, 2, 7, 8, 40, 0x7e020000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
	1 << 32, 1<<32 | 1, 1<<32 | 0xffffffff, 0xffffffff00000000, 0xffffffff00000001,
	math.MaxUint64 - 1, math.MaxUint64,
}

func randomValue(r *rand.Rand) uint64 {
	v := edgeValues[r.IntN(len(edgeValues))]
	switch r.IntN(4) {
	case 0:
		return v + uint64(r.IntN(3)) - 1
	case 1:
		return r.Uint64() >> r.IntN(64)
	}
	return v
}

var randomActions = []Action{ActAllow, ActErrno, ActKillProcess, ActKillThread, ActTrap, ActTrace, ActLog}

func randomRule(r *rand.Rand, names []string) Syscall {
	s := Syscall{Action: randomActions[r.IntN(len(randomActions))]}
	for range 1 + r.IntN(3) {
		s.Names = append(s.Names, names[r.IntN(len(names))])
	}
	if s.Action == ActErrno && r.IntN(2) == 0 {
		e := uint(r.IntN(maxErrno + 1))
		s.ErrnoRet = &e
	}
	for range r.IntN(4) {
		s.Args = append(s.Args, Arg{
			Index:    uint(r.IntN(3)),
			Op:       operators[r.IntN(len(operators))],
			Value:    randomValue(r),
			ValueTwo: randomValue(r),
		})
	}
	return s
}

// TestCompilerMatchesReference runs random profiles, small and large
// enough to need far jumps, on random calls in the BPF interpreter.
func TestCompilerMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var pool []string
	for _, table := range []string{"x86_64", "i386", "aarch64", "arm"} {
		pool = append(pool, tables()[table].names...)
	}
	small := []string{"read", "personality", "socket", "clone", "set_tls", "arch_prctl", "no_such_call"}
	longest := 0
	for round := range 120 {
		names, nRules := small, 1+r.IntN(12)
		if round%4 == 0 {
			names, nRules = pool, 50+r.IntN(100)
		}
		p := &Profile{DefaultAction: randomActions[r.IntN(len(randomActions))]}
		if r.IntN(3) == 0 {
			p.Architectures = []string{"SCMP_ARCH_X86", "SCMP_ARCH_ARM"}
		} else {
			p.ArchMap = []ArchMapEntry{{Arch: "SCMP_ARCH_X86_64", SubArches: []string{"SCMP_ARCH_X86", "SCMP_ARCH_X32"}}}
		}
		for range nRules {
			p.Syscalls = append(p.Syscalls, randomRule(r, names))
		}
		for _, goarch := range []string{"amd64", "arm64", "arm"} {
			tgt := Target{Arch: goarch, Kernel: KernelVersion{6, 1}}
			prog, err := p.CompileFor(tgt)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			longest = max(longest, len(prog))
			v := newVM(t, prog)
			sections, _ := p.sections(goarch)
			for range 150 {
				c := randomCall(r, sections, p)
				want := reference(t, p, tgt, c)
				if got := v.run(t, c); got != want {
					t.Fatalf("round %d %s (%d instructions): call %+v: got %s, want %s",
						round, goarch, len(prog), c, verdict(got), verdict(want))
				}
			}
		}
	}
	t.Logf("longest program: %d instructions", longest)
	if longest < 1000 {
		t.Errorf("longest program has %d instructions; far jumps went untested", longest)
	}
}

// randomCall makes a call the profile names, or any number, on an
// accepted architecture or not.
func randomCall(r *rand.Rand, sections []section, p *Profile) call {
	c := call{arch: sections[r.IntN(len(sections))].audit}
	if r.IntN(20) == 0 {
		c.arch = 0xc000_0000 | uint32(r.IntN(256))
	}
	sec := sections[0]
	for _, s := range sections {
		if s.audit == c.arch {
			sec = s
		}
	}
	a := sec.abis[r.IntN(len(sec.abis))]
	switch n := r.IntN(10); {
	case n < 7:
		rule := p.Syscalls[r.IntN(len(p.Syscalls))]
		if nr, ok := tables()[a.table].lookup(rule.Names[0]); ok {
			c.nr = nr
			break
		}
		fallthrough
	case n < 9:
		c.nr = tables()[a.table].nrs[r.IntN(len(tables()[a.table].nrs))]
	default:
		c.nr = []uint32{472, 1000, x32Bit | 600, 0xf0000, 0xf0007, math.MaxUint32}[r.IntN(6)]
	}
	for i := range c.args {
		c.args[i] = randomValue(r)
	}
	return c
}

// TestEveryNumberMatchesReference gives every name of every table its own
// errno, conditional for some, and checks every number of each table and
// its neighbours, aliases included.
func TestEveryNumberMatchesReference(t *testing.T) {
	p := &Profile{DefaultAction: ActErrno, Architectures: []string{"SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_ARM"}}
	seen := map[string]bool{}
	for _, table := range []string{"x86_64", "i386", "x32", "aarch64", "arm", "riscv64"} {
		for i, name := range tables()[table].names {
			if seen[name] {
				continue
			}
			seen[name] = true
			errno := uint(1 + len(seen)%maxErrno)
			s := Syscall{Names: []string{name}, Action: ActErrno, ErrnoRet: &errno}
			if i%3 == 0 {
				s.Action, s.ErrnoRet = ActAllow, nil
				s.Args = []Arg{{Index: uint(i % 6), Value: uint64(i), Op: OpGreaterEqual}}
			}
			p.Syscalls = append(p.Syscalls, s)
		}
	}
	for _, goarch := range []string{"amd64", "arm64", "arm", "riscv64"} {
		tgt := Target{Arch: goarch, Kernel: KernelVersion{6, 1}}
		prog, err := p.CompileFor(tgt)
		if err != nil {
			t.Fatal(err)
		}
		v := newVM(t, prog)
		sections, _ := p.sections(goarch)
		for _, sec := range sections {
			for _, a := range sec.abis {
				for _, nr := range tables()[a.table].nrs {
					for _, n := range []uint32{nr - 1, nr, nr + 1} {
						for _, arg := range []uint64{0, 300, 1 << 40} {
							c := call{arch: sec.audit, nr: n, args: [6]uint64{arg, arg, arg, arg, arg, arg}}
							if got, want := v.run(t, c), reference(t, p, tgt, c); got != want {
								t.Fatalf("%s %s nr %d: got %s, want %s", goarch, a.table, n, verdict(got), verdict(want))
							}
						}
					}
				}
			}
		}
		t.Logf("%s: %d instructions", goarch, len(prog))
	}
}

// TestResolveMergesAliases checks that resolve yields each number once,
// in order, with the rules of all its names: on ARM, a rule for
// sync_file_range2 and one for arm_sync_file_range both reach call 341.
func TestResolveMergesAliases(t *testing.T) {
	errno := uint(22)
	p := &Profile{DefaultAction: ActAllow, Syscalls: []Syscall{
		{Names: []string{"arm_sync_file_range"}, Action: ActErrno, ErrnoRet: &errno},
		{Names: []string{"sync_file_range2"}, Action: ActKillProcess, Args: []Arg{{Index: 0, Value: 1, Op: OpEqualTo}}},
	}}
	for _, table := range []string{"x86_64", "i386", "x32", "aarch64", "arm", "riscv64"} {
		all := namedRule{names: tables()[table].names, rule: rule{ret: retLog}}
		c := compiler{b: newBuilder(), chains: map[string]*chain{}, defaultRet: retEPERM}
		out := c.resolve(abi{bits: 64}, tables()[table], []namedRule{all})
		for i := 1; i < len(out); i++ {
			if out[i-1].nr >= out[i].nr {
				t.Fatalf("%s: number %d after %d", table, out[i].nr, out[i-1].nr)
			}
		}
	}
	prog, err := p.CompileFor(Target{Arch: "arm", Kernel: KernelVersion{6, 1}})
	if err != nil {
		t.Fatal(err)
	}
	v := newVM(t, prog)
	for arg, want := range map[uint64]uint32{0: retErrno | 22, 1: retKillProcess} {
		if got := v.run(t, call{arch: abiArm.audit, nr: 341, args: [6]uint64{arg}}); got != want {
			t.Errorf("arm 341 (%d): got %s, want %s", arg, verdict(got), verdict(want))
		}
	}
}
