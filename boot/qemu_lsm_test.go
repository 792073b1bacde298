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

` + landlockSwapConfig + `
[[container]]
name = "admin"
image = "/images/demo.tar.zst"
after = ["confined", "plain", "landlock", "landlock-userns"]
oneshot = true
command = ["/bin/sh", "-c", "berth ps --json | tr -d ' ' | sed 's/^/ps=/'; berth status | grep -E '^(security|policy|confined)'"]
` + adminMounts

// landlockSwapScript replaces its read path /tmp/pub, writable beneath
// its write path /tmp, with a symlink to /demo, which it may not read,
// then waits (at most two minutes) for an exec to say it is done.
const landlockSwapScript = `command = ["/bin/sh", "-c", """
cat /tmp/pub/readme
rm -r /tmp/pub && ln -s /demo /tmp/pub && echo swapped
cat /tmp/pub/show.sh >/tmp/x 2>&1 && echo first reads demo || echo first denied demo
i=0; while [ ! -e /tmp/done ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
"""]`

// landlockSwapConfig runs the swap, direct and user-namespaced, and an
// admin that, once each has swapped, reads /demo through an exec into
// it: the exec must be refused as the first process is.
const landlockSwapConfig = `
[[container]]
name = "landlock-swap"
image = "/images/demo.tar.zst"
oneshot = true
` + landlockSwapScript + `
[container.landlock]
read = ["/bin", "/tmp/pub"]
write = ["/tmp"]

[[container]]
name = "landlock-swap-userns"
image = "/images/demo.tar.zst"
user_ns = true
oneshot = true
` + landlockSwapScript + `
[container.landlock]
read = ["/bin", "/tmp/pub"]
write = ["/tmp"]

[[container]]
name = "landlock-exec"
image = "/images/demo.tar.zst"
oneshot = true
command = ["/bin/sh", "-c", """
for c in landlock-swap landlock-swap-userns; do
  i=0; until berth exec $c -- test -L /tmp/pub || [ $i -ge 600 ]; do sleep 0.2; i=$((i+1)); done
  berth exec $c -- cat /demo/show.sh >/dev/null 2>&1 && echo "$c exec reads demo" || echo "$c exec denied demo"
  berth exec $c -- cat /tmp/pub/show.sh >/dev/null 2>&1 && echo "$c exec reads pub" || echo "$c exec denied pub"
  berth exec $c -- touch /tmp/done && echo "$c exec writes tmp"
done
"""]
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
// beneath theirs, and an exec into one whose workload swapped a read
// path for a symlink to /demo may read /demo no more than it can.
func TestQEMUAppArmor(t *testing.T) {
	out, err := bootAppliance(t, appliance{
		arch: "amd64", config: apparmorConfig,
		initrd: map[string]string{"etc/apparmor/berth-test": compileProfile(t, "berth-test")},
		files:  map[string]string{"tmp/pub/readme": "public readme\n"},
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
		"landlock-swap | public readme", "landlock-swap | swapped", "landlock-swap | first denied demo",
		"landlock-swap-userns | swapped", "landlock-swap-userns | first denied demo",
		"landlock-exec | landlock-swap exec denied demo", "landlock-exec | landlock-swap exec denied pub",
		"landlock-exec | landlock-swap exec writes tmp",
		"landlock-exec | landlock-swap-userns exec denied demo", "landlock-exec | landlock-swap-userns exec denied pub",
		"landlock-exec | landlock-swap-userns exec writes tmp",
		`"name":"confined"`, `"apparmor":"berth-test"`,
		`"last_exit":"couldnotstart:apparmorprofile\"no-such-profile\":notloadedinthekernel`,
		"policy", "apparmor /etc/apparmor/berth-test: loaded",
		"confined: apparmor berth-test",
	)
	for _, bad := range []string{"ran without its profile", "confined | etc writable", "exec reads"} {
		if strings.Contains(out, bad) {
			t.Errorf("console shows %q", bad)
		}
	}
}
