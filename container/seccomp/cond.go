package seccomp

import (
	"math"
	"math/bits"

	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data: int nr; u32 arch; u64 instruction_pointer;
// u64 args[6]. Every ABI here is little-endian, so an argument's low word
// comes first.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

func argLow(i int) uint32  { return offArgs + 8*uint32(i) }
func argHigh(i int) uint32 { return argLow(i) + 4 }

// A cond is one argument comparison, for one ABI.
type cond struct {
	arg  int
	op   Operator
	v, w uint64 // value, and valueTwo for OpMaskedEqual
}

// A truth is what folding tells of a cond before the call is made.
type truth int

const (
	depends truth = iota
	always
	never
)

// fold settles comparisons whose outcome the value alone decides. On a
// 32-bit ABI the argument is its low word (the kernel's high word is not
// the caller's), so it compares as a number below 2^32 and the cond left
// over has values that fit 32 bits.
func (c cond) fold(argBits int) (cond, truth) {
	top := uint64(math.MaxUint64)
	if argBits == 32 {
		top = math.MaxUint32
	}
	switch c.op {
	case OpMaskedEqual:
		c.v &= top
		if c.w&^c.v != 0 {
			return c, never
		}
		if c.v == 0 {
			return c, always
		}
	case OpEqualTo:
		if c.v > top {
			return c, never
		}
	case OpNotEqual:
		if c.v > top {
			return c, always
		}
	case OpLessThan:
		if c.v == 0 {
			return c, never
		}
		if c.v > top {
			return c, always
		}
	case OpLessEqual:
		if c.v >= top {
			return c, always
		}
	case OpGreaterThan:
		if c.v >= top {
			return c, never
		}
	case OpGreaterEqual:
		if c.v == 0 {
			return c, always
		}
		if c.v > top {
			return c, never
		}
	}
	return c, depends
}

// highIsZeroTest reports whether, on a 64-bit ABI, the cond needs of the
// high word only "is it zero": its value (or mask) has a zero high word.
func (c cond) highIsZeroTest() bool {
	return c.v>>32 == 0
}

// trueWhenHighSet is the cond's outcome when the argument's high word is
// non-zero and its values' high words are zero (highIsZeroTest).
func (c cond) trueWhenHighSet() bool {
	return c.op == OpNotEqual || c.op == OpGreaterThan || c.op == OpGreaterEqual
}

// clobbers reports whether testing the low word needs "A &= mask", which
// loses the loaded word.
func (c cond) clobbers() bool {
	if c.op != OpMaskedEqual {
		return false
	}
	m, w := uint32(c.v), uint32(c.w)
	return w != 0 && (w != m || bits.OnesCount32(m) != 1)
}

// testLow writes the low-word comparison of c, the loaded low word in A.
// On a 64-bit ABI it runs only once the high words are equal, so the
// unsigned 32-bit comparison finishes the 64-bit one.
func (b *builder) testLow(c cond, yes, no label) label {
	v := uint32(c.v)
	switch c.op {
	case OpEqualTo:
		return b.jump(unix.BPF_JEQ, v, yes, no)
	case OpNotEqual:
		return b.jump(unix.BPF_JEQ, v, no, yes)
	case OpGreaterThan:
		return b.jump(unix.BPF_JGT, v, yes, no)
	case OpGreaterEqual:
		return b.jump(unix.BPF_JGE, v, yes, no)
	case OpLessThan:
		return b.jump(unix.BPF_JGE, v, no, yes)
	case OpLessEqual:
		return b.jump(unix.BPF_JGT, v, no, yes)
	}
	m, w := uint32(c.v), uint32(c.w)
	switch {
	case w == 0:
		return b.jump(unix.BPF_JSET, m, no, yes)
	case !c.clobbers():
		return b.jump(unix.BPF_JSET, m, yes, no)
	}
	return b.and(m, b.jump(unix.BPF_JEQ, w, yes, no))
}

// testHigh writes the high-word part of a 64-bit comparison: it goes to
// yes or no when the high words decide, else to low.
func (b *builder) testHigh(c cond, low, yes, no label) label {
	vh := uint32(c.v >> 32)
	var test label
	switch c.op {
	case OpEqualTo:
		test = b.jump(unix.BPF_JEQ, vh, low, no)
	case OpNotEqual:
		test = b.jump(unix.BPF_JEQ, vh, low, yes)
	case OpGreaterThan, OpGreaterEqual: // high > vh: yes; == vh: low; < vh: no
		test = b.ordered(vh, low, yes, no)
	case OpLessThan, OpLessEqual: // high > vh: no; == vh: low; < vh: yes
		test = b.ordered(vh, low, no, yes)
	case OpMaskedEqual:
		mh, wh := vh, uint32(c.w>>32)
		if mh == 0 { // fold left wh == 0: the high word cannot matter
			return low
		}
		test = b.testLow(cond{op: OpMaskedEqual, v: uint64(mh), w: uint64(wh)}, low, no)
	}
	return b.load(argHigh(c.arg), test)
}

// ordered writes a three-way test of A against k: greater, equal, less.
func (b *builder) ordered(k uint32, equal, greater, less label) label {
	switch k {
	case 0:
		return b.jump(unix.BPF_JEQ, k, equal, greater)
	case math.MaxUint32:
		return b.jump(unix.BPF_JEQ, k, equal, less)
	}
	return b.jump(unix.BPF_JGT, k, greater, b.jump(unix.BPF_JEQ, k, equal, less))
}

// testCond writes a complete comparison: yes if it holds, else no.
func (b *builder) testCond(c cond, argBits int, yes, no label) label {
	low := b.load(argLow(c.arg), b.testLow(c, yes, no))
	if argBits == 32 {
		return low
	}
	return b.testHigh(c, low, yes, no)
}

// testAll writes the conjunction of conds: yes if all hold, else no.
func (b *builder) testAll(conds []cond, argBits int, yes, no label) label {
	next := yes
	for i := len(conds) - 1; i >= 0; i-- {
		next = b.testCond(conds[i], argBits, next, no)
	}
	return next
}

// testAny writes the disjunction of conds on one argument, each with a
// high word that is zero or does not matter (highIsZeroTest): one load of
// each word and one jump per cond, where testAll would load per cond.
func (b *builder) testAny(conds []cond, argBits int, yes, no label) label {
	arg := conds[0].arg
	low := b.lowChain(conds, yes, no)
	if argBits == 32 {
		return low
	}
	var masked []cond
	highSet := no
	for _, c := range conds {
		if c.trueWhenHighSet() {
			highSet = yes
		}
		if c.op == OpMaskedEqual {
			masked = append(masked, c)
		}
	}
	if len(masked) == len(conds) {
		return low
	}
	if highSet == no && len(masked) > 0 {
		highSet = b.lowChain(masked, yes, no)
	}
	return b.load(argHigh(arg), b.jump(unix.BPF_JEQ, 0, low, highSet))
}

// lowChain loads the argument's low word and tries each cond on it, those
// that keep A first; after one that clobbers A the word is loaded again.
func (b *builder) lowChain(conds []cond, yes, no label) label {
	ordered := make([]cond, 0, len(conds))
	for _, c := range conds {
		if !c.clobbers() {
			ordered = append(ordered, c)
		}
	}
	for _, c := range conds {
		if c.clobbers() {
			ordered = append(ordered, c)
		}
	}
	next := no
	for i := len(ordered) - 1; i >= 0; i-- {
		next = b.testLow(ordered[i], yes, next)
		if ordered[i].clobbers() && i > 0 && ordered[i-1].clobbers() {
			next = b.load(argLow(ordered[i].arg), next) // the previous test clobbered A
		}
	}
	return b.load(argLow(ordered[0].arg), next)
}
