package seccomp

import (
	"testing"

	"golang.org/x/sys/unix"
)

// testABI is an ABI with the syscall numbers the tests use, written out
// by hand (from the kernel's tables) so they also check the generated ones.
type testABI struct {
	name  string
	audit uint32
	bits  int
	nrs   map[string]uint32
}

var (
	abiX86_64 = testABI{"x86_64", unix.AUDIT_ARCH_X86_64, 64, map[string]uint32{
		"read": 0, "write": 1, "execve": 59, "getpid": 39, "keyctl": 250, "add_key": 248,
		"request_key": 249, "unshare": 272, "clone": 56, "clone3": 435, "mount": 165,
		"reboot": 169, "ptrace": 101, "kexec_load": 246, "init_module": 175,
		"personality": 135, "socket": 41, "chroot": 161, "open_by_handle_at": 304,
	}}
	abiI386 = testABI{"i386", unix.AUDIT_ARCH_I386, 32, map[string]uint32{
		"read": 3, "write": 4, "execve": 11, "getpid": 20, "keyctl": 288, "add_key": 286,
		"request_key": 287, "unshare": 310, "clone": 120, "clone3": 435, "mount": 21,
		"reboot": 88, "ptrace": 26, "kexec_load": 283, "init_module": 128,
		"personality": 136, "socket": 359, "chroot": 61, "open_by_handle_at": 342,
		"socketcall": 102,
	}}
	abiAarch64 = testABI{"aarch64", unix.AUDIT_ARCH_AARCH64, 64, map[string]uint32{
		"read": 63, "write": 64, "execve": 221, "getpid": 172, "keyctl": 219, "add_key": 217,
		"request_key": 218, "unshare": 97, "clone": 220, "clone3": 435, "mount": 40,
		"reboot": 142, "ptrace": 117, "kexec_load": 104, "init_module": 105,
		"personality": 92, "socket": 198, "chroot": 51, "open_by_handle_at": 265,
	}}
	abiArm = testABI{"arm", unix.AUDIT_ARCH_ARM, 32, map[string]uint32{
		"read": 3, "write": 4, "execve": 11, "getpid": 20, "keyctl": 311, "add_key": 309,
		"request_key": 310, "unshare": 337, "clone": 120, "clone3": 435, "mount": 21,
		"reboot": 88, "ptrace": 26, "kexec_load": 347, "init_module": 128,
		"personality": 136, "socket": 281, "chroot": 61, "open_by_handle_at": 371,
		"cacheflush": 0xf0002, "set_tls": 0xf0005, "get_tls": 0xf0006,
	}}
	abiRiscv64 = testABI{"riscv64", unix.AUDIT_ARCH_RISCV64, 64, map[string]uint32{
		"read": 63, "write": 64, "execve": 221, "getpid": 172, "keyctl": 219, "add_key": 217,
		"request_key": 218, "unshare": 97, "clone": 220, "clone3": 435, "mount": 40,
		"reboot": 142, "ptrace": 117, "kexec_load": 104, "init_module": 105,
		"personality": 92, "socket": 198, "chroot": 51, "open_by_handle_at": 265,
		"riscv_flush_icache": 259,
	}}
	abiX32 = testABI{"x32", unix.AUDIT_ARCH_X86_64, 64, map[string]uint32{
		"read": x32Bit | 0, "write": x32Bit | 1, "execve": x32Bit | 520, "keyctl": x32Bit | 250,
		"kexec_load": x32Bit | 528, "ptrace": x32Bit | 521, "mount": x32Bit | 165,
	}}
)

// goarchABIs are the ABIs a program for each GOARCH accepts from Default.
var goarchABIs = map[string][]testABI{
	"amd64":   {abiX86_64, abiI386},
	"arm64":   {abiAarch64, abiArm},
	"arm":     {abiArm},
	"riscv64": {abiRiscv64},
}

// nr returns the number of a system call the test knows for a.
func (a testABI) nr(t testing.TB, name string) uint32 {
	t.Helper()
	n, ok := a.nrs[name]
	if !ok {
		t.Fatalf("test has no %s number for %s", a.name, name)
	}
	return n
}

func TestTablesMatchKernelNumbers(t *testing.T) {
	for _, a := range []testABI{abiX86_64, abiI386, abiAarch64, abiArm, abiRiscv64, abiX32} {
		table, ok := tables()[a.name]
		if !ok {
			t.Fatalf("no table %s", a.name)
		}
		for name, want := range a.nrs {
			if got, ok := table.lookup(name); !ok || got != want {
				t.Errorf("%s %s = %d, %v; want %d", a.name, name, got, ok, want)
			}
		}
	}
	for name, table := range tables() {
		if len(table.names) != len(table.nrs) || len(table.names) < 300 {
			t.Errorf("%s: %d names, %d numbers", name, len(table.names), len(table.nrs))
		}
		for i := 1; i < len(table.names); i++ {
			if table.names[i-1] >= table.names[i] {
				t.Errorf("%s: names not sorted at %q", name, table.names[i])
			}
		}
	}
	if r := tables()["arm"].ranges; len(r) != 2 || r[1] != [2]uint32{0xf0001, 0xf0006} {
		t.Errorf("arm ranges = %#x, want the ordinary calls and 0xf0001-0xf0006", r)
	}
	if r := tables()["x32"].ranges; len(r) != 1 || r[0] != [2]uint32{x32Bit, x32Bit | 547} {
		t.Errorf("x32 ranges = %#x, want %#x-%#x", r, x32Bit, x32Bit|547)
	}
}

// TestSectionsInNumberOrder checks what buildIntervals relies on: the
// ABIs of a section have increasing, disjoint numbers.
func TestSectionsInNumberOrder(t *testing.T) {
	p := &Profile{DefaultAction: ActAllow, Architectures: []string{"SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_ARM"}}
	for goarch := range platforms {
		sections, err := p.sections(goarch)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sections {
			var last int64 = -1
			for _, a := range s.abis {
				for _, r := range tables()[a.table].ranges {
					if int64(r[0]) <= last {
						t.Errorf("%s: %s range %#x-%#x overlaps what precedes it", goarch, a.table, r[0], r[1])
					}
					last = int64(r[1])
				}
			}
		}
	}
}
