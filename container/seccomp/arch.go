package seccomp

import (
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// An abi is one system call numbering a filter can meet: the kernel
// reports it in seccomp_data.arch as audit, and on x86_64 the x32 ABI
// shares that value, telling itself apart by bit 30 of the number.
type abi struct {
	scmp  string // libseccomp name: SCMP_ARCH_X86_64
	table string // syscall table: x86_64 (internal/sysnum/x86_64)
	audit uint32 // AUDIT_ARCH_*
	bits  int    // argument width: 32 where seccomp_data's high words are not the caller's
}

// abis lists what this package can compile for.
var abis = []abi{
	{"SCMP_ARCH_X86_64", "x86_64", unix.AUDIT_ARCH_X86_64, 64},
	{"SCMP_ARCH_X86", "i386", unix.AUDIT_ARCH_I386, 32},
	{"SCMP_ARCH_X32", "x32", unix.AUDIT_ARCH_X86_64, 64},
	{"SCMP_ARCH_AARCH64", "aarch64", unix.AUDIT_ARCH_AARCH64, 64},
	{"SCMP_ARCH_ARM", "arm", unix.AUDIT_ARCH_ARM, 32},
	{"SCMP_ARCH_RISCV64", "riscv64", unix.AUDIT_ARCH_RISCV64, 64},
}

// scmpArches are all the SCMP_ARCH_* names a profile may mention; those
// not in abis are accepted and ignored, as profiles list every platform.
var scmpArches = []string{
	"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
	"SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32",
	"SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
	"SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
	"SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64",
	"SCMP_ARCH_M68K", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
}

// A platform is what a GOARCH runs: its native ABI and the others its
// kernel may also execute.
type platform struct {
	native string
	others []string
}

var platforms = map[string]platform{
	"amd64":   {"SCMP_ARCH_X86_64", []string{"SCMP_ARCH_X86", "SCMP_ARCH_X32"}},
	"arm64":   {"SCMP_ARCH_AARCH64", []string{"SCMP_ARCH_ARM"}},
	"arm":     {"SCMP_ARCH_ARM", nil},
	"riscv64": {"SCMP_ARCH_RISCV64", nil},
}

func abiByName(scmp string) (abi, bool) {
	i := slices.IndexFunc(abis, func(a abi) bool { return a.scmp == scmp })
	if i < 0 {
		return abi{}, false
	}
	return abis[i], true
}

// A syscallTable maps names to numbers; names are sorted and byNr lists
// their indexes in number order. ranges are the dense runs of numbers:
// one, or two on ARM, whose private calls start at 0x0f0000.
type syscallTable struct {
	names  []string
	nrs    []uint32
	byNr   []uint16
	ranges [][2]uint32
}

// index returns the position of name in the table.
func (t syscallTable) index(name string) (int, bool) {
	return slices.BinarySearch(t.names, name)
}

func (t syscallTable) lookup(name string) (uint32, bool) {
	i, ok := t.index(name)
	if !ok {
		return 0, false
	}
	return t.nrs[i], true
}

// linked are the syscall tables linked into this binary, registered by
// the tables_GOARCH.go files so each binary carries only its own.
var linked = map[string]syscallTable{}

// tablesInit computes tables's value, once.
func tablesInit() map[string]syscallTable {
	out := map[string]syscallTable{}
	for name, t := range linked {
		for k, i := range t.byNr {
			if k == 0 || t.nrs[i]-t.nrs[t.byNr[k-1]] >= rangeGap {
				t.ranges = append(t.ranges, [2]uint32{t.nrs[i], t.nrs[i]})
			}
			t.ranges[len(t.ranges)-1][1] = t.nrs[i]
		}
		out[name] = t
	}
	return out
}

// tablesOnce holds its result: a sync.OnceValue variable would be init
// code run in every berth process; a sync.Once is data.
var tablesOnce struct {
	sync.Once
	v map[string]syscallTable
}

// tables returns the linked tables with their ranges, computed on first
// use rather than in every berth process's package initialisation.
func tables() map[string]syscallTable {
	tablesOnce.Do(func() { tablesOnce.v = tablesInit() })
	return tablesOnce.v
}

// rangeGap is the smallest gap between two numbers of a table that starts
// a new range; gaps inside a range are at most a few dozen numbers.
const rangeGap = 0x1000

func registerTable(name string, names []string, nrs []uint32, byNr []uint16) {
	linked[name] = syscallTable{names: names, nrs: nrs, byNr: byNr}
}
