package seccomp

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// containerdCaps are containerd's default capabilities.
var containerdCaps = []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE", "KILL"}

func withCaps(extra ...string) []string {
	return append(slices.Clone(containerdCaps), extra...)
}

const (
	cloneThreadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
		unix.CLONE_THREAD | unix.CLONE_SYSVSEM | unix.CLONE_SETTLS |
		unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID
	afVsock = 40
	afAlg   = 38
)

// defaultCase is one call checked against Default on every ABI.
type defaultCase struct {
	name   string
	sys    string
	args   [6]uint64
	caps   []string      // nil: containerd's defaults
	kernel KernelVersion // zero: 6.1
	want   uint32
	bits   int // 0: every ABI, else only ABIs of that argument width
}

var defaultCases = []defaultCase{
	{name: "read", sys: "read", want: retAllow},
	{name: "write", sys: "write", want: retAllow},
	{name: "execve", sys: "execve", want: retAllow},
	{name: "getpid", sys: "getpid", want: retAllow},
	{name: "keyctl", sys: "keyctl", want: retEPERM},
	{name: "add_key", sys: "add_key", want: retEPERM},
	{name: "request_key", sys: "request_key", want: retEPERM},
	{name: "mount", sys: "mount", want: retEPERM},
	{name: "reboot", sys: "reboot", want: retEPERM},
	{name: "kexec_load", sys: "kexec_load", want: retEPERM},
	{name: "init_module", sys: "init_module", want: retEPERM},
	{name: "open_by_handle_at", sys: "open_by_handle_at", want: retEPERM},
	{name: "chroot without SYS_CHROOT", sys: "chroot", want: retEPERM},
	{name: "chroot with SYS_CHROOT", sys: "chroot", caps: withCaps("SYS_CHROOT"), want: retAllow},
	{name: "unshare(CLONE_NEWUSER)", sys: "unshare", args: [6]uint64{unix.CLONE_NEWUSER}, want: retEPERM},
	{name: "unshare(CLONE_NEWNS) with SYS_ADMIN", sys: "unshare", args: [6]uint64{unix.CLONE_NEWNS}, caps: withCaps("CAP_SYS_ADMIN"), want: retAllow},
	{name: "clone(CLONE_NEWUSER)", sys: "clone", args: [6]uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, want: retEPERM},
	{name: "clone(CLONE_NEWNET)", sys: "clone", args: [6]uint64{unix.CLONE_NEWNET}, want: retEPERM},
	{name: "clone(CLONE_NEWUSER) with SYS_ADMIN", sys: "clone", args: [6]uint64{unix.CLONE_NEWUSER}, caps: withCaps("SYS_ADMIN"), want: retAllow},
	{name: "clone fork", sys: "clone", args: [6]uint64{uint64(unix.SIGCHLD)}, want: retAllow},
	{name: "clone thread", sys: "clone", args: [6]uint64{cloneThreadFlags}, want: retAllow},
	{name: "clone3", sys: "clone3", want: retENOSYS},
	{name: "clone3 with SYS_ADMIN", sys: "clone3", caps: withCaps("SYS_ADMIN"), want: retAllow},
	{name: "mount with SYS_ADMIN", sys: "mount", caps: withCaps("SYS_ADMIN"), want: retAllow},
	{name: "reboot with SYS_BOOT", sys: "reboot", caps: withCaps("sys_boot"), want: retAllow},
	{name: "ptrace on 4.4", sys: "ptrace", kernel: KernelVersion{4, 4}, want: retEPERM},
	{name: "ptrace on 4.8", sys: "ptrace", kernel: KernelVersion{4, 8}, want: retAllow},
	{name: "ptrace on 4.4 with SYS_PTRACE", sys: "ptrace", kernel: KernelVersion{4, 4}, caps: withCaps("SYS_PTRACE"), want: retAllow},
	{name: "personality(0)", sys: "personality", args: [6]uint64{0}, want: retAllow},
	{name: "personality(PER_LINUX32)", sys: "personality", args: [6]uint64{8}, want: retAllow},
	{name: "personality(0xffffffff)", sys: "personality", args: [6]uint64{0xffffffff}, want: retAllow},
	{name: "personality(0x12345)", sys: "personality", args: [6]uint64{0x12345}, want: retEPERM},
	{name: "socket(AF_INET)", sys: "socket", args: [6]uint64{unix.AF_INET}, want: retAllow},
	{name: "socket(AF_UNIX)", sys: "socket", args: [6]uint64{unix.AF_UNIX}, want: retAllow},
	{name: "socket(AF_NETLINK)", sys: "socket", args: [6]uint64{unix.AF_NETLINK}, want: retAllow},
	{name: "socket(AF_DECnet)", sys: "socket", args: [6]uint64{12}, want: retEPERM},
	{name: "socket(AF_ALG)", sys: "socket", args: [6]uint64{afAlg}, want: retEPERM},
	{name: "socket(AF_VSOCK)", sys: "socket", args: [6]uint64{afVsock}, want: retEPERM},

	// 64-bit ABIs compare whole arguments.
	{name: "personality(1<<32)", sys: "personality", args: [6]uint64{1 << 32}, want: retEPERM, bits: 64},
	{name: "socket(1<<32|AF_INET)", sys: "socket", args: [6]uint64{1<<32 | unix.AF_INET}, want: retEPERM, bits: 64},
	{name: "clone(1<<32|SIGCHLD)", sys: "clone", args: [6]uint64{1<<32 | uint64(unix.SIGCHLD)}, want: retAllow, bits: 64},
	// 32-bit ABIs see only the low word.
	{name: "personality(1<<32) on 32-bit", sys: "personality", args: [6]uint64{1 << 32}, want: retAllow, bits: 32},
}

func TestDefaultProfile(t *testing.T) {
	for _, goarch := range []string{"amd64", "arm64", "arm", "riscv64"} {
		for _, a := range goarchABIs[goarch] {
			t.Run(goarch+"/"+a.name, func(t *testing.T) {
				progs := map[string]vm{}
				for _, tc := range defaultCases {
					if tc.bits != 0 && tc.bits != a.bits {
						continue
					}
					caps, kernel := tc.caps, tc.kernel
					if caps == nil {
						caps = containerdCaps
					}
					if kernel == (KernelVersion{}) {
						kernel = KernelVersion{6, 1}
					}
					key := kernel.String() + "|" + string(rune(len(caps))) + caps[len(caps)-1]
					prog, ok := progs[key]
					if !ok {
						p, err := Default().CompileFor(Target{Arch: goarch, Caps: caps, Kernel: kernel})
						if err != nil {
							t.Fatal(err)
						}
						prog = newVM(t, p)
						progs[key] = prog
					}
					got := prog.run(t, call{arch: a.audit, nr: a.nr(t, tc.sys), args: tc.args})
					if got != tc.want {
						t.Errorf("%s: got %s, want %s", tc.name, verdict(got), verdict(tc.want))
					}
				}
			})
		}
	}
}

// TestDefaultNumberSpace checks numbers no table names, foreign
// architectures and the ABI-specific calls.
func TestDefaultNumberSpace(t *testing.T) {
	type check struct {
		name string
		arch uint32
		nr   uint32
		want uint32
	}
	cases := map[string][]check{
		"amd64": {
			{"x86_64 1000", unix.AUDIT_ARCH_X86_64, 1000, retENOSYS},
			{"x86_64 472", unix.AUDIT_ARCH_X86_64, 472, retENOSYS},
			{"x86_64 471", unix.AUDIT_ARCH_X86_64, 471, retEPERM},
			{"x86_64 -1", unix.AUDIT_ARCH_X86_64, 0xffffffff, retENOSYS},
			{"i386 1000", unix.AUDIT_ARCH_I386, 1000, retENOSYS},
			{"i386 socketcall", unix.AUDIT_ARCH_I386, 102, retAllow},
			{"x32 read", unix.AUDIT_ARCH_X86_64, x32Bit | 0, retAllow},
			{"x32 execve", unix.AUDIT_ARCH_X86_64, x32Bit | 520, retAllow},
			{"x32 kexec_load", unix.AUDIT_ARCH_X86_64, x32Bit | 528, retEPERM},
			{"x32 keyctl", unix.AUDIT_ARCH_X86_64, x32Bit | 250, retEPERM},
			{"x32 slot of x86_64's execve", unix.AUDIT_ARCH_X86_64, x32Bit | 59, retEPERM},
			{"x32 1000", unix.AUDIT_ARCH_X86_64, x32Bit | 1000, retENOSYS},
			{"aarch64", unix.AUDIT_ARCH_AARCH64, 63, retKillProcess},
			{"arm", unix.AUDIT_ARCH_ARM, 3, retKillProcess},
		},
		"arm64": {
			{"aarch64 1000", unix.AUDIT_ARCH_AARCH64, 1000, retENOSYS},
			{"arm 1000", unix.AUDIT_ARCH_ARM, 1000, retENOSYS},
			{"arm set_tls", unix.AUDIT_ARCH_ARM, 0xf0005, retAllow},
			{"arm cacheflush", unix.AUDIT_ARCH_ARM, 0xf0002, retAllow},
			{"arm get_tls", unix.AUDIT_ARCH_ARM, 0xf0006, retEPERM},
			{"arm private 0xf0007", unix.AUDIT_ARCH_ARM, 0xf0007, retENOSYS},
			{"arm private base", unix.AUDIT_ARCH_ARM, 0xf0000, retENOSYS},
			{"x86_64", unix.AUDIT_ARCH_X86_64, 0, retKillProcess},
		},
		"arm": {
			{"arm 1000", unix.AUDIT_ARCH_ARM, 1000, retENOSYS},
			{"arm set_tls", unix.AUDIT_ARCH_ARM, 0xf0005, retAllow},
			{"aarch64", unix.AUDIT_ARCH_AARCH64, 63, retKillProcess},
			{"i386", unix.AUDIT_ARCH_I386, 3, retKillProcess},
		},
		"riscv64": {
			{"riscv64 1000", unix.AUDIT_ARCH_RISCV64, 1000, retENOSYS},
			{"riscv_flush_icache", unix.AUDIT_ARCH_RISCV64, 259, retAllow},
			{"x86_64", unix.AUDIT_ARCH_X86_64, 0, retKillProcess},
		},
	}
	for goarch, checks := range cases {
		t.Run(goarch, func(t *testing.T) {
			p, err := Default().CompileFor(Target{Arch: goarch, Caps: containerdCaps, Kernel: KernelVersion{6, 1}})
			if err != nil {
				t.Fatal(err)
			}
			v := newVM(t, p)
			for _, c := range checks {
				if got := v.run(t, call{arch: c.arch, nr: c.nr}); got != c.want {
					t.Errorf("%s (nr %#x): got %s, want %s", c.name, c.nr, verdict(got), verdict(c.want))
				}
			}
		})
	}
}

// TestDefaultFitsKernelLimit compiles Default for every GOARCH with no
// capabilities, containerd's and all of them.
func TestDefaultFitsKernelLimit(t *testing.T) {
	all := withCaps("SYS_ADMIN", "SYS_PTRACE", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_PACCT",
		"SYS_RAWIO", "SYS_TIME", "SYS_TTY_CONFIG", "SYS_NICE", "SYSLOG", "BPF", "PERFMON", "DAC_READ_SEARCH")
	for _, goarch := range []string{"amd64", "arm64", "arm", "riscv64"} {
		for _, caps := range [][]string{nil, containerdCaps, all} {
			p, err := Default().CompileFor(Target{Arch: goarch, Caps: caps, Kernel: KernelVersion{6, 1}})
			if err != nil {
				t.Fatal(err)
			}
			if len(p) > unix.BPF_MAXINSNS {
				t.Errorf("%s with %d caps: %d instructions", goarch, len(caps), len(p))
			}
			newVM(t, p) // checks jumps stay in bounds and it ends in a return
			t.Logf("%s, %d caps: %d instructions", goarch, len(caps), len(p))
		}
	}
}
