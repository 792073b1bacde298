package seccomp

import (
	"slices"

	"golang.org/x/sys/unix"
)

// A label is an instruction of a program under construction, counted from
// the program's end (see builder).
type label int

// A builder writes a classic BPF program backwards, last instruction
// first. Classic BPF only jumps forward, so every target exists before the
// jump to it, its distance is known when the jump is written, and writing
// more instructions in front never changes it. A conditional jump reaches
// at most 255 instructions; farther targets get an unconditional jump
// (32-bit offset) as a trampoline right behind it.
type builder struct {
	rev  []unix.SockFilter // the program, reversed
	rets map[uint32]label  // return instructions already written
}

// retReuse is how far back a return instruction is shared rather than
// written again, to keep jumps short.
const retReuse = 200

func newBuilder() *builder {
	return &builder{rets: map[uint32]label{}}
}

// emit puts f in front of everything written so far.
func (b *builder) emit(f unix.SockFilter) label {
	b.rev = append(b.rev, f)
	return label(len(b.rev) - 1)
}

// offset is the jump distance from the next instruction written to l.
func (b *builder) offset(l label) int {
	return len(b.rev) - int(l) - 1
}

// ret returns an instruction returning k, sharing a near one.
func (b *builder) ret(k uint32) label {
	if l, ok := b.rets[k]; ok && b.offset(l) < retReuse {
		return l
	}
	l := b.emit(unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k})
	b.rets[k] = l
	return l
}

// goTo returns l if it is the next instruction, else a jump to it, so a
// straight-line instruction written next falls through to l.
func (b *builder) goTo(l label) label {
	if b.offset(l) == 0 {
		return l
	}
	return b.emit(unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(b.offset(l))})
}

// load writes "A = 32-bit word at off of seccomp_data", then next.
func (b *builder) load(off uint32, next label) label {
	b.goTo(next)
	return b.emit(unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off})
}

// and writes "A &= k", then next.
func (b *builder) and(k uint32, next label) label {
	b.goTo(next)
	return b.emit(unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: k})
}

// jump writes "if A op k goto yes else goto no"; op is BPF_JEQ, BPF_JGT,
// BPF_JGE or BPF_JSET.
func (b *builder) jump(op uint16, k uint32, yes, no label) label {
	if yes == no {
		return yes
	}
	if b.offset(yes) > 255 {
		yes = b.emit(unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(b.offset(yes))})
	}
	if b.offset(no) > 255 {
		no = b.emit(unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(b.offset(no))})
	}
	return b.emit(unix.SockFilter{
		Code: unix.BPF_JMP | op | unix.BPF_K,
		K:    k,
		Jt:   uint8(b.offset(yes)),
		Jf:   uint8(b.offset(no)),
	})
}

// program returns the instructions in execution order; entry must be the
// last one written.
func (b *builder) program() []unix.SockFilter {
	prog := slices.Clone(b.rev)
	slices.Reverse(prog)
	return prog
}
