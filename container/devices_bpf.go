package container

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The cgroup v2 device controller is an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup: for each access it
// gets struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// with access_type = access<<16 | type, and returns 1 to allow, 0 to deny.
// The program is a handful of instructions per rule, assembled here rather
// than with an eBPF library, which would cost more binary than all of
// berth's device handling.

// insn is one eBPF instruction.
type insn struct {
	code byte
	regs byte // dst | src<<4
	off  int16
	imm  int32
}

const (
	opLdxW   = unix.BPF_LDX | unix.BPF_MEM | unix.BPF_W
	opMovX   = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_X
	opMovK   = unix.BPF_ALU64 | unix.BPF_MOV | unix.BPF_K
	opAndK   = unix.BPF_ALU64 | unix.BPF_AND | unix.BPF_K
	opRshK   = unix.BPF_ALU64 | unix.BPF_RSH | unix.BPF_K
	opJneK   = unix.BPF_JMP | unix.BPF_JNE | unix.BPF_K
	opExit   = unix.BPF_JMP | unix.BPF_EXIT
	regR0    = 0
	regCtx   = 1
	regAcc   = 2 // requested access bits
	regType  = 3 // device type
	regMajor = 4
	regMinor = 5
	regTmp   = 6
)

func reg(dst, src byte) byte { return dst | src<<4 }

// deviceProgram assembles an allow-list program for rules.
func deviceProgram(rules []deviceRule) []insn {
	prog := []insn{
		{opLdxW, reg(regAcc, regCtx), 0, 0},
		{opMovX, reg(regType, regAcc), 0, 0},
		{opAndK, reg(regType, 0), 0, 0xffff},
		{opRshK, reg(regAcc, 0), 0, 16},
		{opLdxW, reg(regMajor, regCtx), 4, 0},
		{opLdxW, reg(regMinor, regCtx), 8, 0},
	}
	for _, r := range rules {
		// Each check jumps past the rest of its block when it fails.
		var checks [][]insn
		switch r.typ {
		case 'c':
			checks = append(checks, []insn{{opJneK, reg(regType, 0), 0, unix.BPF_DEVCG_DEV_CHAR}})
		case 'b':
			checks = append(checks, []insn{{opJneK, reg(regType, 0), 0, unix.BPF_DEVCG_DEV_BLOCK}})
		}
		var allowed int32
		for _, a := range r.access {
			switch a {
			case 'r':
				allowed |= unix.BPF_DEVCG_ACC_READ
			case 'w':
				allowed |= unix.BPF_DEVCG_ACC_WRITE
			case 'm':
				allowed |= unix.BPF_DEVCG_ACC_MKNOD
			}
		}
		checks = append(checks, []insn{
			{opMovX, reg(regTmp, regAcc), 0, 0},
			{opAndK, reg(regTmp, 0), 0, ^allowed & 7},
			{opJneK, reg(regTmp, 0), 0, 0},
		})
		if r.major >= 0 {
			checks = append(checks, []insn{{opJneK, reg(regMajor, 0), 0, int32(r.major)}})
		}
		if r.minor >= 0 {
			checks = append(checks, []insn{{opJneK, reg(regMinor, 0), 0, int32(r.minor)}})
		}
		allow := []insn{{opMovK, reg(regR0, 0), 0, 1}, {opExit, 0, 0, 0}}
		// Lay the block out and point every failing jump at its end.
		var block []insn
		for _, c := range checks {
			block = append(block, c...)
		}
		block = append(block, allow...)
		for i := range block {
			if block[i].code == opJneK {
				block[i].off = int16(len(block) - i - 1)
			}
		}
		prog = append(prog, block...)
	}
	return append(prog, insn{opMovK, reg(regR0, 0), 0, 0}, insn{opExit, 0, 0, 0})
}

// encode lays instructions out as the kernel reads them.
func encode(prog []insn) []byte {
	buf := make([]byte, 8*len(prog))
	for i, in := range prog {
		b := buf[8*i:]
		b[0], b[1] = in.code, in.regs
		binary.LittleEndian.PutUint16(b[2:], uint16(in.off))
		binary.LittleEndian.PutUint32(b[4:], uint32(in.imm))
	}
	return buf
}

// bpfProgLoadAttr is the BPF_PROG_LOAD part of union bpf_attr.
type bpfProgLoadAttr struct {
	progType    uint32
	insnCnt     uint32
	insns       uint64
	license     uint64
	logLevel    uint32
	logSize     uint32
	logBuf      uint64
	kernVersion uint32
	progFlags   uint32
	progName    [16]byte
	ifindex     uint32
	attachType  uint32
}

// bpfProgAttachAttr is the BPF_PROG_ATTACH part of union bpf_attr.
type bpfProgAttachAttr struct {
	targetFd    uint32
	attachBpfFd uint32
	attachType  uint32
	attachFlags uint32
}

// progLoadAttempts bounds the retries of BPF_PROG_LOAD: the verifier gives
// up with EAGAIN when a signal arrives while it runs, and Go's runtime
// signals its threads (preemption) all the time.
const progLoadAttempts = 100

// loadDeviceProgram loads the allow-list for rules and returns its fd.
// The load asks for no verifier log: writing it makes the verifier
// several times slower (about 1 ms a load on a 2-core VM, against 0.3),
// long enough that a signal every millisecond or so interrupts every
// attempt. Only a program the verifier refuses is loaded again with the
// log, for the error's message.
func loadDeviceProgram(rules []deviceRule) (*os.File, error) {
	return loadProgram(encode(deviceProgram(rules)))
}

// loadProgram loads code, encoded instructions, as a cgroup device
// program (see loadDeviceProgram).
func loadProgram(code []byte) (*os.File, error) {
	license := []byte("Apache-2.0\x00")
	fd, errno := progLoad(code, license, nil)
	if errno == 0 {
		// The kernel creates BPF fds close-on-exec.
		return os.NewFile(fd, "bpf-prog"), nil
	}
	if errno == unix.EAGAIN || errno == unix.EINTR {
		return nil, fmt.Errorf("%w: interrupted by signals %d times", errno, progLoadAttempts)
	}
	if errno != unix.EACCES && errno != unix.EINVAL {
		return nil, errno // not the verifier's refusal: it has no log to give
	}
	logBuf := make([]byte, 64<<10)
	fd, logErrno := progLoad(code, license, logBuf)
	if logErrno == 0 { // refused, then loaded: take it
		return os.NewFile(fd, "bpf-prog"), nil
	}
	log := strings.TrimSpace(unix.ByteSliceToString(logBuf))
	if log == "" {
		return nil, fmt.Errorf("%w (the verifier's log: none: %v)", errno, logErrno)
	}
	return nil, fmt.Errorf("%w: %s", errno, log) // ENOSPC: the log's first 64 KiB
}

// progLoad runs BPF_PROG_LOAD of code with license, with the verifier's
// log in logBuf when it is not nil, and again while a signal interrupts
// it, at most progLoadAttempts times. The buffers' addresses go into the
// attributes right before each system call, with no call in between
// that could move the goroutine's stack, where the buffers may live.
func progLoad(code, license, logBuf []byte) (uintptr, unix.Errno) {
	attr := bpfProgLoadAttr{progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE, insnCnt: uint32(len(code) / 8)}
	copy(attr.progName[:], "berth_devices")
	var fd uintptr
	var errno unix.Errno
	for range progLoadAttempts {
		attr.insns = uint64(uintptr(unsafe.Pointer(&code[0])))
		attr.license = uint64(uintptr(unsafe.Pointer(&license[0])))
		if logBuf != nil {
			attr.logLevel, attr.logSize = 1, uint32(len(logBuf))
			attr.logBuf = uint64(uintptr(unsafe.Pointer(&logBuf[0])))
		}
		fd, _, errno = unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		if errno != unix.EAGAIN && errno != unix.EINTR {
			break
		}
	}
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	runtime.KeepAlive(logBuf)
	return fd, errno
}

// attachDeviceProgram loads the allow-list for rules and attaches it to
// the cgroup v2 directory dir. The attachment lives as long as the cgroup.
func attachDeviceProgram(dir string, rules []deviceRule) error {
	prog, err := loadDeviceProgram(rules)
	if err != nil {
		return fmt.Errorf("load device program for %s: %w", dir, err)
	}
	defer prog.Close()

	cg, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("attach device program: %w", err)
	}
	defer cg.Close()
	at := bpfProgAttachAttr{
		targetFd: uint32(cg.Fd()), attachBpfFd: uint32(prog.Fd()),
		attachType: unix.BPF_CGROUP_DEVICE, attachFlags: unix.BPF_F_ALLOW_MULTI,
	}
	if _, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_ATTACH, uintptr(unsafe.Pointer(&at)), unsafe.Sizeof(at)); errno != 0 {
		return fmt.Errorf("attach device program to %s: %w", dir, errno)
	}
	return nil
}
