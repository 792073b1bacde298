package board

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// The ELF reading berth needs is small — a file's machine, and one
// section of a kernel module — so it is done here rather than with
// debug/elf, which brings DWARF and compressed-section support into
// every berth binary.

// ELF machines (e_machine) of the architectures berth is built for.
const (
	emX86_64  = 62
	emAARCH64 = 183
	emARM     = 40
	emRISCV   = 243
	em386     = 3
)

// elfMachine is the ELF machine of an architecture berth builds for (a
// switch: a map would be built at every start).
func elfMachine(arch string) (uint16, bool) {
	switch arch {
	case "amd64":
		return emX86_64, true
	case "arm64":
		return emAARCH64, true
	case "arm":
		return emARM, true
	case "riscv64":
		return emRISCV, true
	case "386":
		return em386, true
	}
	return 0, false
}

// machineName names an ELF machine as the ELF specification does.
func machineName(m uint16) string {
	for name, v := range map[string]uint16{"EM_X86_64": emX86_64, "EM_AARCH64": emAARCH64, "EM_ARM": emARM, "EM_RISCV": emRISCV, "EM_386": em386} {
		if v == m {
			return name
		}
	}
	return "ELF machine " + strconv.Itoa(int(m))
}

// maxSection bounds the section readELF returns, and the section name
// table it reads on the way.
const maxSection = 1 << 20

// elfFile is what berth reads of an ELF file.
type elfFile struct {
	machine uint16
	order   binary.ByteOrder
	is64    bool
	r       io.ReaderAt
}

// openELF reads an ELF file's identification and machine.
func openELF(r io.ReaderAt) (*elfFile, error) {
	var h [20]byte
	if _, err := r.ReadAt(h[:], 0); err != nil || !bytes.Equal(h[:4], []byte("\x7fELF")) {
		return nil, errors.New("not an ELF file")
	}
	e := &elfFile{r: r}
	switch h[5] {
	case 1:
		e.order = binary.LittleEndian
	case 2:
		e.order = binary.BigEndian
	default:
		return nil, fmt.Errorf("ELF data encoding %d", h[5])
	}
	switch h[4] {
	case 1:
	case 2:
		e.is64 = true
	default:
		return nil, fmt.Errorf("ELF class %d", h[4])
	}
	e.machine = e.order.Uint16(h[18:])
	return e, nil
}

// section returns the content of the section called name, or nil when
// the file has none.
func (e *elfFile) section(name string) ([]byte, error) {
	// The section header table: offset, entry size, count, names' index.
	hdr, at := make([]byte, 64), []int{0x20, 0x2e, 0x30, 0x32}
	if e.is64 {
		at = []int{0x28, 0x3a, 0x3c, 0x3e}
	}
	if _, err := e.r.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("ELF header: %w", err)
	}
	shoff := uint64(e.order.Uint32(hdr[at[0]:]))
	if e.is64 {
		shoff = e.order.Uint64(hdr[at[0]:])
	}
	entsize, num, strndx := int64(e.order.Uint16(hdr[at[1]:])), int(e.order.Uint16(hdr[at[2]:])), int(e.order.Uint16(hdr[at[3]:]))
	minEntsize := int64(40)
	if e.is64 {
		minEntsize = 64
	}
	if entsize < minEntsize || strndx >= num || shoff > 1<<40 {
		return nil, errors.New("ELF section headers out of bounds")
	}
	sec := func(i int) (nameOff uint32, off, size uint64, err error) {
		b := make([]byte, entsize)
		if _, err := e.r.ReadAt(b, int64(shoff)+int64(i)*entsize); err != nil {
			return 0, 0, 0, fmt.Errorf("ELF section header %d: %w", i, err)
		}
		if e.is64 {
			return e.order.Uint32(b), e.order.Uint64(b[24:]), e.order.Uint64(b[32:]), nil
		}
		return e.order.Uint32(b), uint64(e.order.Uint32(b[16:])), uint64(e.order.Uint32(b[20:])), nil
	}
	read := func(off, size uint64) ([]byte, error) {
		if size > maxSection || off > 1<<40 {
			return nil, fmt.Errorf("ELF section of %d bytes at %d: more than berth reads", size, off)
		}
		b := make([]byte, size)
		if _, err := e.r.ReadAt(b, int64(off)); err != nil {
			return nil, fmt.Errorf("ELF section: %w", err)
		}
		return b, nil
	}
	_, off, size, err := sec(strndx)
	if err != nil {
		return nil, err
	}
	names, err := read(off, size)
	if err != nil {
		return nil, err
	}
	for i := 0; i < num; i++ {
		n, off, size, err := sec(i)
		if err != nil {
			return nil, err
		}
		if int(n) < len(names) && bytes.HasPrefix(names[n:], append([]byte(name), 0)) {
			return read(off, size)
		}
	}
	return nil, nil
}

// ELFMachine checks that file is an ELF program for arch (a GOARCH).
func ELFMachine(file, arch string) error {
	want, ok := elfMachine(arch)
	if !ok {
		return fmt.Errorf("no ELF machine known for %q", arch)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	e, err := openELF(f)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if e.machine != want {
		return fmt.Errorf("%s is a program for %s", file, machineName(e.machine))
	}
	dynamic, err := e.interpreter()
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if dynamic {
		return fmt.Errorf("%s is dynamically linked (it names a program interpreter), and no library is there to run it: build berth with CGO_ENABLED=0", file)
	}
	return nil
}

// interpreter tells whether the file names a program interpreter
// (PT_INTERP): a dynamically linked program, which a machine without its
// loader and libraries cannot run.
func (e *elfFile) interpreter() (bool, error) {
	// The program header table: offset, entry size, count.
	hdr, at := make([]byte, 64), []int{0x1c, 0x2a, 0x2c}
	if e.is64 {
		at = []int{0x20, 0x36, 0x38}
	}
	if _, err := e.r.ReadAt(hdr, 0); err != nil {
		return false, fmt.Errorf("ELF header: %w", err)
	}
	phoff := uint64(e.order.Uint32(hdr[at[0]:]))
	if e.is64 {
		phoff = e.order.Uint64(hdr[at[0]:])
	}
	entsize, num := int64(e.order.Uint16(hdr[at[1]:])), int(e.order.Uint16(hdr[at[2]:]))
	if num == 0 {
		return false, nil
	}
	if entsize < 32 || phoff > 1<<40 {
		return false, errors.New("ELF program headers out of bounds")
	}
	typ := make([]byte, 4)
	for i := 0; i < num; i++ {
		if _, err := e.r.ReadAt(typ, int64(phoff)+int64(i)*entsize); err != nil {
			return false, fmt.Errorf("ELF program header %d: %w", i, err)
		}
		if e.order.Uint32(typ) == ptInterp {
			return true, nil
		}
	}
	return false, nil
}

// ptInterp is the program header type of a program interpreter's path.
const ptInterp = 3
