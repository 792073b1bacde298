package seccomp

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// customProfile allows everything but a few calls, exercising each action.
const customProfile = `{
	"defaultAction": "SCMP_ACT_ALLOW",
	"architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_ARM"],
	"flags": ["SECCOMP_FILTER_FLAG_LOG"],
	"syscalls": [
		{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
		 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]},
		{"name": "ptrace", "action": "SCMP_ACT_KILL_PROCESS"},
		{"names": ["kexec_load"], "action": "SCMP_ACT_KILL"},
		{"names": ["reboot"], "action": "SCMP_ACT_TRAP", "comment": "signal the caller"},
		{"names": ["mount"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
		{"names": ["keyctl"], "action": "SCMP_ACT_LOG"},
		{"names": ["mmap"], "action": "SCMP_ACT_ERRNO",
		 "args": [{"index": 2, "value": 6, "valueTwo": 6, "op": "SCMP_CMP_MASKED_EQ"}]},
		{"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "5.10"}},
		{"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["SYS_ADMIN"]}}
	]
}`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadRoundTrip(t *testing.T) {
	p, err := Load(writeFile(t, customProfile))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Syscalls) != 9 || p.Syscalls[1].Name != "ptrace" || *p.Syscalls[0].ErrnoRet != 22 ||
		p.Syscalls[7].Includes.MinKernel.String() != "5.10" {
		t.Fatalf("parsed %+v", p)
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Load(writeFile(t, string(data)))
	if err != nil {
		t.Fatalf("reload %s: %v", data, err)
	}
	if !reflect.DeepEqual(p, again) {
		t.Errorf("round trip changed the profile:\n%+v\n%+v", p, again)
	}
	if flags, err := p.FilterFlags(); err != nil || flags != unix.SECCOMP_FILTER_FLAG_LOG {
		t.Errorf("FilterFlags = %#x, %v", flags, err)
	}

	prog, err := p.CompileFor(Target{Arch: "amd64", Kernel: KernelVersion{5, 4}})
	if err != nil {
		t.Fatal(err)
	}
	v := newVM(t, prog)
	x86 := uint32(unix.AUDIT_ARCH_X86_64)
	for _, c := range []struct {
		name string
		c    call
		want uint32
	}{
		{"personality(0)", call{x86, 135, [6]uint64{0}}, retAllow},
		{"personality(8)", call{x86, 135, [6]uint64{8}}, retErrno | 22},
		{"ptrace", call{x86, 101, [6]uint64{}}, retKillProcess},
		{"kexec_load", call{x86, 246, [6]uint64{}}, retKillThread},
		{"reboot", call{x86, 169, [6]uint64{}}, retTrap},
		{"mount", call{x86, 165, [6]uint64{}}, retTrace | 7},
		{"keyctl", call{x86, 250, [6]uint64{}}, retLog},
		{"mmap PROT_WRITE|PROT_EXEC", call{x86, 9, [6]uint64{0, 4096, 7}}, retEPERM},
		{"mmap PROT_READ", call{x86, 9, [6]uint64{0, 4096, 1}}, retAllow},
		{"chroot before 5.10", call{x86, 161, [6]uint64{}}, retAllow},
		{"unshare without SYS_ADMIN", call{x86, 272, [6]uint64{}}, retEPERM},
		{"unknown number, default allow", call{x86, 1000, [6]uint64{}}, retAllow},
		{"x32 not listed", call{x86, x32Bit, [6]uint64{}}, retENOSYS},
		{"i386 ptrace", call{unix.AUDIT_ARCH_I386, 26, [6]uint64{}}, retKillProcess},
	} {
		if got := v.run(t, c.c); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, verdict(got), verdict(c.want))
		}
	}
}

func TestDefaultRoundTrip(t *testing.T) {
	p := Default()
	data, err := json.MarshalIndent(p, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, again) {
		t.Error("Default does not survive a JSON round trip")
	}
	if p.Syscalls[0].Names[0] != "accept" || len(p.Syscalls) < 50 {
		t.Errorf("unexpected default profile: %d rules", len(p.Syscalls))
	}
}

func TestLoadErrors(t *testing.T) {
	rule := func(s string) string {
		return `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, ` + s + `]}`
	}
	for _, tc := range []struct {
		name, content string
		want          []string
	}{
		{"unknown action", rule(`{"names": ["ptrace"], "action": "SCMP_ACT_FOO"}`),
			[]string{`syscalls[1] (ptrace): action: unknown action "SCMP_ACT_FOO"`}},
		{"bad op", rule(`{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_BAD"}]}`),
			[]string{`syscalls[1] (clone): args[0]: unknown op "SCMP_CMP_BAD"`}},
		{"missing op", rule(`{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1}]}`),
			[]string{"args[0]: op is missing"}},
		{"arg index", rule(`{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}`),
			[]string{"args[0]: index 6 is out of range 0-5"}},
		{"invalid JSON", "{\n\t\"defaultAction\": \"SCMP_ACT_ERRNO\",\n\t\"syscalls\": [\n\t\t{\"names\": [\"read\"] \"action\": 1}\n]}",
			[]string{"line 4, column 22: invalid JSON"}},
		{"wrong type", "{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n\"syscalls\": [{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"args\": [{\"index\": \"zero\"}]}]}",
			[]string{"line 2,", "syscalls.args.index: want uint, got JSON string"}},
		{"unknown key", `{"defaultAction": "SCMP_ACT_ERRNO", "sycalls": []}`, []string{`unknown field "sycalls"`}},
		{"empty", "", []string{"empty file"}},
		{"trailing data", `{"defaultAction": "SCMP_ACT_ERRNO"} {}`, []string{"data after the profile object"}},
		{"no default action", `{"syscalls": []}`, []string{"defaultAction: action is missing"}},
		{"notify", rule(`{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}`), []string{"SCMP_ACT_NOTIFY is not supported"}},
		{"listener", `{"defaultAction": "SCMP_ACT_ERRNO", "listenerPath": "/run/l.sock"}`, []string{"listenerPath"}},
		{"errnoRet on allow", rule(`{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}`), []string{"errnoRet is only valid with"}},
		{"errno too big", rule(`{"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}`), []string{"errnoRet 70000 is above 4095"}},
		{"name and names", rule(`{"name": "mount", "names": ["umount"], "action": "SCMP_ACT_ERRNO"}`), []string{"both name and names"}},
		{"no names", rule(`{"action": "SCMP_ACT_ERRNO"}`), []string{"syscalls[1]: names is empty"}},
		{"unknown arch", `{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}`, []string{`architectures[0]: unknown architecture "SCMP_ARCH_Z80"`}},
		{"arches and archMap", `{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []}]}`,
			[]string{"both architectures and archMap"}},
		{"bad minKernel", rule(`{"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four.8"}}`), []string{`bad kernel version "four.8"`}},
		{"unknown flag", `{"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}`, []string{`flags[0]: unsupported flag`}},
		{"too large", `{"defaultAction": "SCMP_ACT_ERRNO", "comment": "` + strings.Repeat("x", MaxProfileSize) + `"}`, []string{"larger than 1048576 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.content)
			_, err := Load(path)
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range append(tc.want, "seccomp: load profile "+path+": ") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json: no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestCompileErrors(t *testing.T) {
	p := Default()
	for _, tc := range []struct {
		arch, want string
	}{
		{"mips64", `compile for mips64: unsupported GOARCH "mips64"`},
		{"", `unsupported GOARCH ""`},
	} {
		if _, err := p.Compile(tc.arch, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Compile(%q) = %v, want %q", tc.arch, err, tc.want)
		}
	}
	p.Syscalls[3].Action = "SCMP_ACT_NOPE"
	if _, err := p.Compile("amd64", nil); err == nil || !strings.Contains(err.Error(), `syscalls[3] (socket): action: unknown action "SCMP_ACT_NOPE"`) {
		t.Errorf("Compile of a broken profile: %v", err)
	}
}
