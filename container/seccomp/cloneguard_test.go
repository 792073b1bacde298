package seccomp

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestCloneGuard runs the clone guard of every GOARCH on each ABI that
// GOARCH runs: clone with CLONE_PARENT (alone, among other flags, in the
// high word too) fails with EPERM, without it is allowed, clone3 fails
// with ENOSYS, any other call is allowed, another architecture kills.
func TestCloneGuard(t *testing.T) {
	const parent = unix.CLONE_PARENT
	for arch, pf := range platforms {
		prog, err := CloneGuard(arch)
		if err != nil {
			t.Fatal(err)
		}
		if len(prog) > 40 {
			t.Errorf("%s: the guard has %d instructions: it should be small", arch, len(prog))
		}
		v := newVM(t, prog)
		for _, name := range append([]string{pf.native}, pf.others...) {
			a, _ := abiByName(name)
			tab := tables()[a.table]
			nr := func(n string) uint32 {
				x, ok := tab.lookup(n)
				if !ok {
					t.Fatalf("%s: no %s", a.table, n)
				}
				return x
			}
			for _, c := range []struct {
				nr   uint32
				arg0 uint64
				want uint32
			}{
				{nr("clone"), parent, retEPERM},
				{nr("clone"), parent | unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD), retEPERM},
				{nr("clone"), 1<<32 | parent, retEPERM},
				{nr("clone"), uint64(unix.SIGCHLD), retAllow},
				{nr("clone"), unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND, retAllow},
				{nr("clone3"), 0, retENOSYS},
				{nr("execve"), parent, retAllow},
				{nr("getpid"), parent, retAllow},
				{nr("wait4"), parent, retAllow},
			} {
				got := v.run(t, call{arch: a.audit, nr: c.nr, args: [6]uint64{c.arg0}})
				if got != c.want {
					t.Errorf("%s on %s: nr %d arg0 %#x: %s, want %s", arch, a.table, c.nr, c.arg0, verdict(got), verdict(c.want))
				}
			}
		}
		if got := v.run(t, call{arch: unix.AUDIT_ARCH_S390X, nr: 120, args: [6]uint64{parent}}); got != retKillProcess {
			t.Errorf("%s: s390x clone: %s, want kill", arch, verdict(got))
		}
	}
	if _, err := CloneGuard("mips"); err == nil {
		t.Error("a guard for mips")
	}
}
