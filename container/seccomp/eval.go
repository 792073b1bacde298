package seccomp

import (
	"encoding/binary"
	"runtime"

	"golang.org/x/sys/unix"
)

// Call is one system call of this machine's native ABI, as a filter sees
// it.
type Call struct {
	Nr   uint32
	Args [6]uint64
}

// Verdict runs prog, a filter Compile made, on c as the kernel would on
// this machine's native ABI, and returns what it answers (SECCOMP_RET_*
// with its data). ok is false when prog holds an instruction Compile does
// not emit, or jumps or loads out of bounds.
func Verdict(prog []unix.SockFilter, c Call) (ret uint32, ok bool) {
	p, found := platforms[runtime.GOARCH]
	if !found {
		return 0, false
	}
	a, _ := abiByName(p.native)
	// struct seccomp_data, in the machine's byte order: nr, arch,
	// instruction_pointer, args.
	var data [64]byte
	binary.NativeEndian.PutUint32(data[0:], c.Nr)
	binary.NativeEndian.PutUint32(data[4:], a.audit)
	for i, v := range c.Args {
		binary.NativeEndian.PutUint64(data[16+8*i:], v)
	}
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K > 60 || in.K%4 != 0 {
				return 0, false
			}
			acc = binary.NativeEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_RET | unix.BPF_K:
			return in.K, true
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K,
			unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			if jump(in.Code&0xf0, acc, in.K) {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		default:
			return 0, false
		}
	}
	return 0, false // fell off the end: the kernel refuses such a program
}

// jump is a conditional jump's test on the accumulator.
func jump(op uint16, acc, k uint32) bool {
	switch op {
	case unix.BPF_JEQ:
		return acc == k
	case unix.BPF_JGT:
		return acc > k
	case unix.BPF_JGE:
		return acc >= k
	}
	return acc&k != 0 // BPF_JSET
}

// Allows reports whether ret lets the call through (LOG does, logged).
func Allows(ret uint32) bool {
	a := ret & unix.SECCOMP_RET_ACTION_FULL
	return a == unix.SECCOMP_RET_ALLOW || a == unix.SECCOMP_RET_LOG
}

// Describe names a verdict: ALLOW, ERRNO(EPERM), KILL_PROCESS, …
func Describe(ret uint32) string {
	switch ret & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_ALLOW:
		return "ALLOW"
	case unix.SECCOMP_RET_ERRNO:
		e := unix.Errno(ret & unix.SECCOMP_RET_DATA)
		if e == 0 {
			return "ERRNO(0), a success that does nothing"
		}
		if n := unix.ErrnoName(e); n != "" {
			return "ERRNO(" + n + ")"
		}
		return "ERRNO"
	case unix.SECCOMP_RET_KILL_PROCESS, unix.SECCOMP_RET_KILL_THREAD:
		return "KILL"
	case unix.SECCOMP_RET_TRAP:
		return "TRAP"
	case unix.SECCOMP_RET_TRACE:
		return "TRACE"
	case unix.SECCOMP_RET_LOG:
		return "LOG"
	case unix.SECCOMP_RET_USER_NOTIF:
		return "USER_NOTIF"
	}
	return "an unknown action"
}
