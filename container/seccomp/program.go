package seccomp

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// EncodeProgram writes a BPF program as the kernel lays it out on a
// little-endian machine: 8 bytes per instruction (code, jt, jf, k), little
// endian. berth stores compiled filters so (the run-time cache, the
// default profile's programs compiled at build time).
func EncodeProgram(prog []unix.SockFilter) []byte {
	code := make([]byte, 8*len(prog))
	for i, in := range prog {
		b := code[8*i:]
		binary.LittleEndian.PutUint16(b, in.Code)
		b[2], b[3] = in.Jt, in.Jf
		binary.LittleEndian.PutUint32(b[4:], in.K)
	}
	return code
}

// DecodeProgram reads what EncodeProgram wrote.
func DecodeProgram(code []byte) ([]unix.SockFilter, error) {
	if len(code)%8 != 0 {
		return nil, fmt.Errorf("seccomp: a program of %d bytes, not a multiple of 8", len(code))
	}
	prog := make([]unix.SockFilter, len(code)/8)
	for i := range prog {
		b := code[8*i:]
		prog[i] = unix.SockFilter{Code: binary.LittleEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.LittleEndian.Uint32(b[4:])}
	}
	return prog, nil
}
