package boot_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth/internal/testutil"
	"berth/internal/vm"
)

// adminMounts give a container the control socket and berth itself.
const adminMounts = `
` + vm.BerthCLIMounts

// landlockScript tries what a Landlock container may and may not do.
const landlockScript = `command = ["/bin/sh", "-c", """
echo x > /tmp/ok && echo tmp writable
echo x > /etc/x 2>&1 || echo etc denied
cat /demo/show.sh >/tmp/x 2>&1 || echo demo unreadable
"""]`

// apparmorConfig loads the test's profile at boot and runs a container
// under it, one unconfined, one under a profile never loaded, and
// Landlock containers; the admin shows berth ps --json and berth status.
const apparmorConfig = `
[security]
apparmor_policy = ["/etc/apparmor/berth-test"]

[[container]]
name = "confined"
image = "/images/demo.tar.zst"
apparmor = "berth-test"
oneshot = true
command = ["/bin/sh", "-c", "echo label $(cat /proc/self/attr/current); echo x > /etc/x && echo etc writable || echo etc denied"]

[[container]]
name = "plain"
image = "/images/demo.tar.zst"
oneshot = true
command = ["/bin/sh", "-c", "echo label $(cat /proc/self/attr/current); echo x > /etc/x && echo etc writable || echo etc denied"]

[[container]]
name = "unknown"
image = "/images/demo.tar.zst"
apparmor = "no-such-profile"
command = ["/bin/echo", "ran without its profile"]

[[container]]
name = "landlock"
image = "/images/demo.tar.zst"
oneshot = true
` + landlockScript + `
[container.landlock]
read = ["/bin"]
write = ["/tmp"]

[[container]]
name = "landlock-userns"
image = "/images/demo.tar.zst"
user_ns = true
oneshot = true
` + landlockScript + `
[container.landlock]
read = ["/bin"]
write = ["/tmp"]

[[container]]
name = "admin"
image = "/images/demo.tar.zst"
after = ["confined", "plain", "landlock", "landlock-userns"]
oneshot = true
command = ["/bin/sh", "-c", "berth ps --json | tr -d ' ' | sed 's/^/ps=/'; berth status | grep -E '^(security|policy|confined)'"]
` + adminMounts

// compileProfile compiles testdata/apparmor/NAME with Debian's
// apparmor_parser for the feature set of Debian's kernels (make lsm-deps
// installs it) and returns the policy blob.
func compileProfile(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join(testutil.RepoRoot(), "boot", "testdata", "apparmor", name)
	out, err := exec.Command("apparmor_parser", "-M", "/usr/share/apparmor-features/features", "-Q", "-S", src).Output()
	if err != nil {
		t.Fatalf("apparmor_parser %s (make lsm-deps installs it): %v", src, err)
	}
	return string(out)
}

// TestQEMUAppArmor boots a Debian kernel running AppArmor and Landlock:
// berth loads the compiled profile of [security] apparmor_policy; the
// container under it reads its profile in /proc/self/attr/current and
// is denied writing /etc, which an unconfined one may; the one whose
// profile was never loaded fails to start, saying so, in berth's log and
// in berth ps, while the others run; Landlock containers (direct and
// user-namespaced) write only beneath their write paths and read only
// beneath theirs.
func TestQEMUAppArmor(t *testing.T) {
	out, err := bootAppliance(t, appliance{
		arch: "amd64", config: apparmorConfig,
		initrd: map[string]string{"etc/apparmor/berth-test": compileProfile(t, "berth-test")},
	})
	if err != nil {
		t.Errorf("QEMU did not exit cleanly: %v", err)
	}
	wantLines(t, out,
		"apparmor policy /etc/apparmor/berth-test loaded",
		"confined | label berth-test (enforce)",
		"confined | etc denied",
		"plain | label unconfined",
		"plain | etc writable",
		`container unknown could not start: apparmor profile "no-such-profile": not loaded in the kernel`,
		"landlock | tmp writable", "landlock | etc denied", "landlock | demo unreadable",
		"landlock-userns | tmp writable", "landlock-userns | etc denied", "landlock-userns | demo unreadable",
		`"name":"confined"`, `"apparmor":"berth-test"`,
		`"last_exit":"couldnotstart:apparmorprofile\"no-such-profile\":notloadedinthekernel`,
		"policy", "apparmor /etc/apparmor/berth-test: loaded",
		"confined: apparmor berth-test",
	)
	for _, bad := range []string{"ran without its profile", "confined | etc writable"} {
		if strings.Contains(out, bad) {
			t.Errorf("console shows %q", bad)
		}
	}
}
