package container

import (
	"path/filepath"
	"strings"
	"testing"

	"berth/internal/testutil"
)

// TestEarlySeccompCannotFakeCredentials: with no_new_privileges = false
// berth installs the profile before it sets the workload's user and
// capabilities; a profile that answers those calls with ERRNO(0), a
// success that does nothing, left the workload root with berth's
// capabilities. Such a profile is refused at the start, naming the call;
// with no_new_privs (the default) it is installed after them and
// harmless to them; a profile that lets them through runs.
func TestEarlySeccompCannotFakeCredentials(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake.json")
	put(fake, `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
		{"names": ["setresuid", "setresgid", "setgroups", "capset", "setuid", "setgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0}]}`)
	plain := filepath.Join(dir, "plain.json")
	put(plain, `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["setuid"], "action": "SCMP_ACT_ERRNO"}]}`)
	user := User{UID: 1000, GID: 1000}
	script := "id -u; grep -E 'CapEff|NoNewPrivs' /proc/self/status | tr -d '\\t' | tr '\\n' ' '"
	for _, userns := range []*UserNS{nil, defaultNS()} {
		_, out, err := run(t, rootfs, Spec{Seccomp: fake, AllowNewPrivileges: true, User: user, UserNS: userns, Caps: []string{}, Args: []string{"sh", "-c", script}})
		if err == nil || !strings.Contains(err.Error(), "with no_new_privileges = false berth installs it before it sets the workload's user and capabilities, and it answers berth's setgroups with ERRNO(0), a success that does nothing") {
			t.Errorf("user ns %v: the faking profile early: %v; output %q", userns != nil, err, out)
		}
	}
	for _, tc := range []struct {
		profile string
		nnp     bool
	}{{fake, false}, {plain, true}} {
		exit, out, err := run(t, rootfs, Spec{Seccomp: tc.profile, AllowNewPrivileges: tc.nnp, User: user, Caps: []string{}, Args: []string{"sh", "-c", script}})
		if err != nil || exit.Status() != 0 || !strings.HasPrefix(out, "1000\n") || !strings.Contains(out, "CapEff:0000000000000000") {
			t.Errorf("%s, allow new privileges %v: %v %s %q", filepath.Base(tc.profile), tc.nnp, err, exit, out)
		}
	}
	// An exec checks the filter with its own user: one that fakes only
	// setresuid(1000) lets the container, root, start, and refuses an
	// exec as 1000.
	only1000 := filepath.Join(dir, "only1000.json")
	put(only1000, `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
		{"names": ["setresuid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0, "args": [{"index": 0, "value": 1000, "op": "SCMP_CMP_EQ"}]}]}`)
	c := startRunning(t, rootfs, Spec{Seccomp: only1000, AllowNewPrivileges: true, Args: []string{"sleep", "1000"}})
	defer func() { c.Kill(); c.Wait() }()
	if _, _, err := execOutput(t, c, ExecOptions{Args: []string{"id", "-u"}, User: &user}); err == nil || !strings.Contains(err.Error(), "answers berth's setresuid(1000) with ERRNO(0)") {
		t.Errorf("exec as 1000 under a filter faking setresuid(1000): %v", err)
	}
	if _, out, err := execOutput(t, c, ExecOptions{Args: []string{"id", "-u"}}); err != nil || !strings.Contains(out, "0") {
		t.Errorf("exec as the container's root: %v %q", err, out)
	}
}
