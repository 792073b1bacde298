package seccomp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// childEnv makes the test binary a child that probes system calls:
// "filtered" installs Default first, "control" does not.
const childEnv = "BERTH_SECCOMP_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// A probe makes one system call and returns its errno (0 on success).
// Each is harmless without a filter: bad magic numbers, missing paths.
type probe struct {
	name string
	call func() unix.Errno
}

// syscallErrno makes a system call whose arguments are plain numbers.
func syscallErrno(nr uintptr, args ...uintptr) unix.Errno {
	var a [6]uintptr
	copy(a[:], args)
	_, _, errno := unix.Syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5])
	return errno
}

func probes(pipe [2]int) []probe {
	buf := make([]byte, 1)
	none, _ := unix.BytePtrFromString("none")
	target, _ := unix.BytePtrFromString("/nonexistent-berth-seccomp-test")
	tmpfs, _ := unix.BytePtrFromString("tmpfs")
	socket := func(family int) func() unix.Errno {
		return func() unix.Errno {
			fd, _, errno := unix.Syscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM, 0)
			if errno == 0 {
				unix.Close(int(fd))
			}
			return errno
		}
	}
	return []probe{
		{"getpid", func() unix.Errno {
			if pid, _, _ := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0); int(pid) != os.Getpid() {
				return unix.EIO
			}
			return 0
		}},
		{"write", func() unix.Errno {
			_, _, errno := unix.Syscall(unix.SYS_WRITE, uintptr(pipe[1]), uintptr(unsafe.Pointer(&buf[0])), 1)
			return errno
		}},
		{"read", func() unix.Errno {
			_, _, errno := unix.Syscall(unix.SYS_READ, uintptr(pipe[0]), uintptr(unsafe.Pointer(&buf[0])), 1)
			return errno
		}},
		{"keyctl", func() unix.Errno { return syscallErrno(unix.SYS_KEYCTL, 0xffff) }},
		{"unshare(CLONE_NEWUSER)", func() unix.Errno { return syscallErrno(unix.SYS_UNSHARE, unix.CLONE_NEWUSER) }},
		{"mount", func() unix.Errno {
			_, _, errno := unix.Syscall6(unix.SYS_MOUNT, uintptr(unsafe.Pointer(none)),
				uintptr(unsafe.Pointer(target)), uintptr(unsafe.Pointer(tmpfs)), 0, 0, 0)
			return errno
		}},
		{"reboot(bad magic)", func() unix.Errno { return syscallErrno(unix.SYS_REBOOT, 0, 0, 0, 0) }},
		{"clone3", func() unix.Errno { return syscallErrno(unix.SYS_CLONE3, 0, 0) }},
		{"personality(query)", func() unix.Errno { return syscallErrno(unix.SYS_PERSONALITY, 0xffffffff) }},
		{"socket(AF_UNIX)", socket(unix.AF_UNIX)},
		{"socket(AF_VSOCK)", socket(unix.AF_VSOCK)},
		{"syscall 1000", func() unix.Errno { return syscallErrno(1000) }},
	}
}

// runChild prints "name: result" per probe; it exits non-zero only when
// it cannot get as far as probing.
func runChild(mode string) int {
	runtime.LockOSThread()
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		fmt.Println("setup:", err)
		return 1
	}
	if mode == "filtered" {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Println("setup: no_new_privs:", err)
			return 1
		}
		prog, err := Default().Compile(runtime.GOARCH, containerdCaps)
		if err != nil {
			fmt.Println("setup:", err)
			return 1
		}
		if err := Install(prog); err != nil {
			fmt.Println("setup:", err)
			return 1
		}
	}
	for _, p := range probes(pipe) {
		result := "ok"
		if errno := p.call(); errno != 0 {
			result = unix.ErrnoName(errno)
		}
		fmt.Printf("%s: %s\n", p.name, result)
	}
	return 0
}

// runChildMode runs the test binary as a child and returns its results.
func runChildMode(t *testing.T, mode string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s child: %v\n%s", mode, err, out)
	}
	results := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if name, result, ok := strings.Cut(sc.Text(), ": "); ok {
			results[name] = result
		}
	}
	return results
}

// TestKernelEnforcesDefault installs Default in a child process and makes
// real system calls.
func TestKernelEnforcesDefault(t *testing.T) {
	if _, ok := platforms[runtime.GOARCH]; !ok {
		t.Skipf("no seccomp support for GOARCH %s", runtime.GOARCH)
	}
	want := map[string]string{
		"getpid":                 "ok",
		"write":                  "ok",
		"read":                   "ok",
		"personality(query)":     "ok",
		"socket(AF_UNIX)":        "ok",
		"keyctl":                 "EPERM",
		"unshare(CLONE_NEWUSER)": "EPERM",
		"mount":                  "EPERM",
		"reboot(bad magic)":      "EPERM",
		"socket(AF_VSOCK)":       "EPERM",
		"clone3":                 "ENOSYS",
		"syscall 1000":           "ENOSYS",
	}
	got := runChildMode(t, "filtered")
	for name, w := range want {
		if got[name] != w {
			t.Errorf("with the filter, %s: got %q, want %s", name, got[name], w)
		}
	}
	if os.Geteuid() != 0 {
		return
	}
	// As root, these fail differently without the filter, so the errors
	// above came from it.
	control := runChildMode(t, "control")
	for _, name := range []string{"keyctl", "unshare(CLONE_NEWUSER)", "mount", "reboot(bad magic)", "clone3"} {
		if control[name] == "" || control[name] == got[name] {
			t.Errorf("without the filter, %s: got %q, want something other than %s", name, control[name], got[name])
		}
	}
	t.Logf("without the filter: %v", control)
}
