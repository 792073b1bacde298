package seccomp

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// A call is one system call as the kernel hands it to a filter.
type call struct {
	arch uint32
	nr   uint32
	args [6]uint64
}

// seccompData lays out struct seccomp_data as a little-endian kernel does.
func (c call) seccompData() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], c.nr)
	binary.LittleEndian.PutUint32(b[4:], c.arch)
	binary.LittleEndian.PutUint64(b[8:], 0x7f0000001000) // instruction_pointer
	for i, a := range c.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// vm runs seccomp programs in golang.org/x/net/bpf's interpreter.
type vm struct{ *bpf.VM }

func newVM(t testing.TB, prog []unix.SockFilter) vm {
	t.Helper()
	insns := make([]bpf.Instruction, len(prog))
	for i, f := range prog {
		insns[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}.Disassemble()
	}
	v, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("bpf.NewVM: %v", err)
	}
	return vm{v}
}

// run returns the filter's verdict on c. The kernel loads seccomp_data's
// 32-bit words in native (here little-endian) order, the VM in network
// order, so each word is byte-swapped on the way in; offsets and values
// stay what the kernel would see.
func (v vm) run(t testing.TB, c call) uint32 {
	t.Helper()
	data := c.seccompData()
	for i := 0; i < len(data); i += 4 {
		binary.BigEndian.PutUint32(data[i:], binary.LittleEndian.Uint32(data[i:]))
	}
	r, err := v.Run(data)
	if err != nil {
		t.Fatalf("run %+v: %v", c, err)
	}
	return uint32(r)
}

// verdict names a return value in failure messages.
func verdict(r uint32) string {
	switch r & unix.SECCOMP_RET_ACTION_FULL {
	case retAllow:
		return "ALLOW"
	case retErrno:
		errno := unix.Errno(r & unix.SECCOMP_RET_DATA)
		if name := unix.ErrnoName(errno); name != "" {
			return fmt.Sprintf("ERRNO(%s)", name)
		}
		return fmt.Sprintf("ERRNO(%d)", errno)
	case retKillProcess:
		return "KILL_PROCESS"
	case retKillThread:
		return "KILL_THREAD"
	case retTrap:
		return "TRAP"
	case retTrace:
		return "TRACE"
	case retLog:
		return "LOG"
	}
	return "unknown"
}
