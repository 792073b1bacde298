package container

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"berth/container/seccomp"
	"berth/internal/testutil"
)

// TestSeccompCacheTrustsOnlyBerthsOwn plants a filter that allows every
// system call where berth run caches compiled filters, in each way a
// container given /run, another user or a stale berth could: berth must
// compile the profile instead. The last row is berth's own file, which is
// used, and shows that the test would see a planted filter taking effect.
// The container has a capability more than the defaults, whose program
// is not embedded.
func TestSeccompCacheTrustsOnlyBerthsOwn(t *testing.T) {
	allowAll := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
	caps := append([]string{"NET_RAW"}, DefaultCaps...)
	key := filterKey(sha256.Sum256(seccomp.DefaultJSON()), caps)
	plant := func(t *testing.T, dir string) string { // a well-formed file; returns its path
		t.Helper()
		code := make([]byte, 8)
		binary.LittleEndian.PutUint16(code, allowAll[0].Code)
		binary.LittleEndian.PutUint32(code[4:], allowAll[0].K)
		sum := filterSum(key, code)
		p := filepath.Join(dir, key+".bpf")
		if err := os.WriteFile(p, append(sum[:], code...), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	chown := func(t *testing.T, p string) {
		if err := os.Lchown(p, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		planted bool // the planted filter is berth's own and is used
	}{
		{"instructions without a checksum", func(t *testing.T, dir string) {
			p := plant(t, dir)
			data, _ := os.ReadFile(p)
			os.WriteFile(p, data[len(data)-8:], 0o600)
		}, false},
		{"checksum does not match", func(t *testing.T, dir string) {
			p := plant(t, dir)
			data, _ := os.ReadFile(p)
			data[0] ^= 1
			os.WriteFile(p, data, 0o600)
		}, false},
		{"directory readable by others", func(t *testing.T, dir string) {
			plant(t, dir)
			os.Chmod(dir, 0o755)
		}, false},
		{"directory owned by another user", func(t *testing.T, dir string) {
			plant(t, dir)
			chown(t, dir)
		}, false},
		{"directory is a symlink", func(t *testing.T, dir string) {
			real := dir + ".real"
			os.Mkdir(real, 0o700)
			plant(t, real)
			os.Remove(dir)
			os.Symlink(real, dir)
		}, false},
		{"file owned by another user", func(t *testing.T, dir string) { chown(t, plant(t, dir)) }, false},
		{"file readable by others", func(t *testing.T, dir string) { os.Chmod(plant(t, dir), 0o644) }, false},
		{"file is a symlink", func(t *testing.T, dir string) {
			other := filepath.Join(dir, "other")
			os.Mkdir(other, 0o700)
			os.Symlink(plant(t, other), filepath.Join(dir, key+".bpf"))
		}, false},
		{"file is a FIFO", func(t *testing.T, dir string) {
			if err := unix.Mkfifo(filepath.Join(dir, key+".bpf"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"berth's own file", func(t *testing.T, dir string) { plant(t, dir) }, true},
	}
	defer func(d string) { SeccompCacheDir = d }(SeccompCacheDir)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			SeccompCacheDir = filepath.Join(t.TempDir(), "run", "seccomp")
			if err := os.MkdirAll(SeccompCacheDir, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, SeccompCacheDir)
			filters.Clear()
			f, err := seccompFilter("default", caps)
			prog := f.prog
			if err != nil {
				t.Fatal(err)
			}
			if used := len(prog) == 1 && prog[0] == allowAll[0]; used != tc.planted {
				t.Errorf("planted filter used: %v, want %v (%d instructions)", used, tc.planted, len(prog))
			}
		})
	}
}

// TestSeccompDefaultEmbedded: a container with the default profile and
// capabilities gets the program compiled at build time — nothing is
// compiled, so nothing is written to the filter cache — and it is the
// program Compile gives on this kernel.
func TestSeccompDefaultEmbedded(t *testing.T) {
	defer func(d string) { SeccompCacheDir = d }(SeccompCacheDir)
	SeccompCacheDir = filepath.Join(t.TempDir(), "seccomp")
	filters.Clear()
	f, err := seccompFilter("default", DefaultCaps)
	prog := f.prog
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(SeccompCacheDir); err == nil {
		t.Error("the default profile was compiled: its program went to the cache")
	}
	p, err := seccomp.Parse(seccomp.DefaultJSON())
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.Compile(runtime.GOARCH, DefaultCaps)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(prog, want) {
		t.Errorf("the embedded program (%d instructions) is not the compiled one (%d)", len(prog), len(want))
	}
}

// TestSeccompProfileSizeLimit gives an endless profile file: refused.
func TestSeccompProfileSizeLimit(t *testing.T) {
	if _, err := seccompFilter("/dev/zero", DefaultCaps); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("endless profile: %v, want it refused for its size", err)
	}
}

// TestSeccompCacheBounded: profiles that keep changing (a reload after
// each edit) neither grow PID 1's filter cache nor the cache directory
// past maxCachedFilters, and every start still gets its own profile's
// filter.
func TestSeccompCacheBounded(t *testing.T) {
	defer func(d string) { SeccompCacheDir = d }(SeccompCacheDir)
	SeccompCacheDir = filepath.Join(t.TempDir(), "seccomp")
	filters.Clear()
	defer filters.Clear()
	dir := t.TempDir()
	const profiles = maxCachedFilters + 40
	for i := range profiles {
		path := filepath.Join(dir, fmt.Sprintf("p%d.json", i))
		data := fmt.Sprintf(`{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": %d, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}`, i+1)
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := seccompFilter(path, DefaultCaps)
		prog := f.prog
		if err != nil {
			t.Fatalf("profile %d: %v", i, err)
		}
		if !slices.ContainsFunc(prog, func(f unix.SockFilter) bool { return f.K == unix.SECCOMP_RET_ERRNO|uint32(i+1) }) {
			t.Fatalf("profile %d: its filter does not return errno %d", i, i+1)
		}
		if n := filters.Len(); n > maxCachedFilters {
			t.Fatalf("after %d profiles, %d filters in memory, above %d", i+1, n, maxCachedFilters)
		}
		entries, err := os.ReadDir(SeccompCacheDir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) > maxCachedFilters {
			t.Fatalf("after %d profiles, %d files in %s, above %d", i+1, len(entries), SeccompCacheDir, maxCachedFilters)
		}
	}
	if filters.Len() == 0 {
		t.Error("nothing cached in memory")
	}
}

// TestSeccompUnknownWarned: a profile naming system calls no ABI has
// still starts, skipping them, and each start says which (once).
func TestSeccompUnknownWarned(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	path := filepath.Join(t.TempDir(), "newer.json")
	profile := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
		{"names": ["getppid", "future_call_b", "future_call_a"], "action": "SCMP_ACT_ERRNO"},
		{"names": ["future_call_a"], "action": "SCMP_ACT_ERRNO"}]}`
	if err := os.WriteFile(path, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // the second start meets the compiled filter in memory
		testSeq++
		spec := Spec{Name: fmt.Sprintf("test-%d-%d", os.Getpid(), testSeq), Rootfs: rootfs, Seccomp: path, Args: []string{"true"}}
		c, err := Start(layout, spec, Options{DieWithParent: true})
		if err != nil {
			t.Fatal(err)
		}
		if exit, _ := c.Wait(); exit.Status() != 0 {
			t.Errorf("start %d: %s", i, exit)
		}
		want := "seccomp profile " + path + ": 2 unknown system calls skipped (berth's tables do not have them): future_call_a, future_call_b"
		if len(c.Warnings) != 1 || c.Warnings[0] != want {
			t.Errorf("start %d: warnings %q, want [%q]", i, c.Warnings, want)
		}
	}
}

// TestSeccompFlagsApplied: a profile's flags reach the kernel. SPEC_ALLOW
// shows in Speculation_Store_Bypass where the CPU lets a thread choose
// (a filter without it forces the mitigation under
// spec_store_bypass_disable=seccomp); elsewhere the start must succeed.
// A flag the kernel does not know fails the check, named.
func TestSeccompFlagsApplied(t *testing.T) {
	if err := seccomp.CheckFlags(unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW); err != nil {
		t.Fatalf("this kernel refuses LOG or SPEC_ALLOW: %v", err)
	}
	if err := seccomp.CheckFlags(1 << 20); err == nil || !strings.Contains(err.Error(), "0x100000") {
		t.Errorf("an unknown flag bit: %v, want it refused, named", err)
	}
	rootfs := testutil.BusyboxRootfs(t)
	ssb := func(flags string) string {
		path := filepath.Join(t.TempDir(), "flags.json")
		profile := `{"defaultAction": "SCMP_ACT_ALLOW", "flags": [` + flags + `], "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]}`
		if err := os.WriteFile(path, []byte(profile), 0o600); err != nil {
			t.Fatal(err)
		}
		exit, out, err := run(t, rootfs, Spec{Seccomp: path, Args: []string{"grep", "Speculation_Store_Bypass", "/proc/self/status"}})
		if err != nil || exit.Status() != 0 {
			t.Fatalf("flags [%s]: %v %s %s", flags, err, exit, out)
		}
		return strings.TrimSpace(out)
	}
	allowed := ssb(`"SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"`)
	forced := ssb("")
	t.Logf("with SPEC_ALLOW: %q; without: %q", allowed, forced)
	if !strings.Contains(forced, "thread force mitigated") {
		t.Skip("this CPU or kernel does not force the mitigation for seccomp: SPEC_ALLOW is not observable")
	}
	if strings.Contains(allowed, "force mitigated") {
		t.Errorf("SPEC_ALLOW was not applied: %q", allowed)
	}
}

// TestSeccompLogFlagLogged: a profile's SECCOMP_FILTER_FLAG_LOG reaches
// the kernel, which then logs the actions the filter takes besides
// allowing (an audit record, type 1326, in the kernel log when no audit
// daemon takes it); without the flag the same refusal is not logged.
func TestSeccompLogFlagLogged(t *testing.T) {
	if auditDaemon() {
		t.Skip("an audit daemon takes the seccomp records: the kernel log does not show them")
	}
	rootfs := testutil.BusyboxRootfs(t)
	logged := func(flags string) bool {
		path := filepath.Join(t.TempDir(), "log.json")
		profile := `{"defaultAction": "SCMP_ACT_ALLOW", "flags": [` + flags + `], "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]}`
		if err := os.WriteFile(path, []byte(profile), 0o600); err != nil {
			t.Fatal(err)
		}
		// A raw descriptor: an *os.File of a pollable device would wait in
		// Go's poller where the test wants EAGAIN at the log's end.
		kmsg, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Skipf("kernel log: %v", err)
		}
		defer unix.Close(kmsg)
		if _, err := unix.Seek(kmsg, 0, 2); err != nil { // SEEK_END: only what comes next
			t.Fatal(err)
		}
		exit, out, err := run(t, rootfs, Spec{Seccomp: path, Args: []string{"sh", "-c", "echo ppid=$PPID"}})
		if err != nil || exit.Status() != 0 {
			t.Fatalf("flags [%s]: %v %s %s", flags, err, exit, out)
		}
		want := fmt.Sprintf(" syscall=%d ", unix.SYS_GETPPID)
		buf := make([]byte, 8192)
		for {
			n, err := unix.Read(kmsg, buf) // one record per read
			if err == unix.EPIPE {
				continue // records overwritten meanwhile: read on
			}
			if err != nil || n <= 0 {
				return false // EAGAIN: no more records
			}
			rec := string(buf[:n])
			if strings.Contains(rec, "type=1326") && strings.Contains(rec, want) {
				return true
			}
		}
	}
	if !logged(`"SECCOMP_FILTER_FLAG_LOG"`) {
		t.Errorf("with SECCOMP_FILTER_FLAG_LOG: the refused getppid was not logged")
	}
	if logged("") {
		t.Errorf("without the flag: the refused getppid was logged")
	}
}

// auditDaemon tells whether a process named auditd runs.
func auditDaemon() bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == "auditd" {
			return true
		}
	}
	return false
}
