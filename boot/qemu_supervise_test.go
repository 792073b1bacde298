package boot_test

import (
	"strings"
	"testing"

	"berth/internal/vm"
)

// superviseConfig is an appliance with dependencies, a crash loop, a
// memory hog and a management container that drives berth over its
// control socket with the berth binary bind-mounted from the host.
const superviseConfig = `
hostname = "supervised"

[[container]]
name = "db"
image = "/images/demo.tar.zst"
restart = "always"
stop_timeout = "3s"
command = ["/bin/sh", "-c", "trap 'echo db stopping; exit 0' TERM; echo db up; while :; do sleep 1; done"]

[[container]]
name = "migrate"
image = "/images/demo.tar.zst"
oneshot = true
after = ["db"]
command = ["/bin/sh", "-c", "echo migrating; sleep 0.2; echo migrated"]

[[container]]
name = "web"
image = "/images/demo.tar.zst"
after = ["migrate"]
restart = "always"
env = ["VERSION=1"]
command = ["/bin/sh", "-c", "trap 'echo web stopping; exit 0' TERM; echo web up $VERSION; while :; do sleep 1; done"]

[[container]]
name = "crash"
image = "/images/demo.tar.zst"
restart = "on-failure"
max_restarts = 3
command = ["/bin/sh", "-c", "echo crashing; exit 1"]

[[container]]
name = "hog"
image = "/images/demo.tar.zst"
restart = "on-failure"
max_restarts = 1
command = ["/bin/sh", "-c", "echo hog starts; exec tail /dev/zero"]
[container.limits]
memory = "16M"

[[container]]
name = "admin"
image = "/images/demo.tar.zst"
after = ["web"]
oneshot = true
command = ["/bin/sh", "/demo/admin.sh"]
[[container.mount]]
source = "/run/berth.sock"
target = "/run/berth.sock"
[[container.mount]]
source = "/init"
target = "/bin/berth"
readonly = true
[[container.mount]]
source = "/etc"
target = "/host/etc"
`

// adminScript runs in the management container.
const adminScript = `#!/bin/sh
# Let the crash loop and the memory hog play out first.
while ! berth ps | grep -q '^hog .*failed'; do sleep 0.5; done
while ! berth ps | grep -q '^crash .*failed'; do sleep 0.5; done
echo "== ps"
berth ps
echo "== logs"
berth logs -n 1 web
berth stop web
while ! berth ps | grep -q '^web .*stopped'; do sleep 0.2; done
echo "== web is stopped"
sed -i 's/VERSION=1/VERSION=2/' /host/etc/berth.toml
berth reload
while ! berth logs web | grep -q 'web up 2'; do sleep 0.2; done
echo "== web runs its new definition"
berth debug signal TERM
sleep 30
`

// TestQEMUSupervision checks supervision on the console of a cgroup v2
// guest: dependency order, a crash loop giving up, an OOM-killed hog
// restarted while the rest keeps running, the control socket used from a
// management container, and SIGTERM to PID 1 stopping everything in
// reverse dependency order.
func TestQEMUSupervision(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			out, err := bootAppliance(t, appliance{
				arch: arch, config: superviseConfig,
				files: map[string]string{"demo/admin.sh": adminScript},
				vm:    vm.Config{Append: []string{"berth.debug"}},
				ends:  "reset", // SIGTERM to PID 1 reboots
			})
			if err != nil {
				t.Errorf("QEMU did not exit cleanly: %v", err)
			}
			wantLines(t, out,
				"container crash: restart 1 in 100ms", "container crash: restart 3 in 400ms",
				"container crash failed: restarted 3 times within 10m0s (max_restarts = 3): giving up",
				"container hog killed: out of memory (limit 16 MiB)", "container hog: restart 1 in 100ms",
				"container hog failed: restarted 1 times within 10m0s (max_restarts = 1): giving up",
				"admin | == ps", "admin | web up 1", "admin | == web is stopped",
				"stopping container web (SIGTERM", "web | web stopping", "container web stopped",
				"config reloaded: changed [web]", "web | web up 2", "admin | == web runs its new definition",
				"got terminated: shutting down (reboot)",
				"container admin stopped in", "container db stopped in",
				"berth: reboot",
			)
			inOrder(t, out, "container db started", "container migrate started", "migrate | migrated",
				"container migrate exited with status 0", "container web started")
			inOrder(t, out, "got terminated", "stopping container admin", "stopping container web", "stopping container db", "berth: reboot")
			// While the hog was killed and restarted, db and web ran on.
			ps := out[strings.Index(out, "admin | == ps"):]
			for _, w := range []string{"db", "web"} {
				if !strings.Contains(ps, "admin | "+w+" ") || !strings.Contains(ps[:strings.Index(ps, "admin | == logs")], "running") {
					t.Errorf("ps does not show %s running", w)
				}
			}
			if t.Failed() {
				t.Logf("console:\n%s", out)
			}
		})
	}
}

// inOrder checks that each string appears after the previous one.
func inOrder(t *testing.T, out string, want ...string) {
	t.Helper()
	at := 0
	for _, w := range want {
		i := strings.Index(out[at:], w)
		if i < 0 {
			t.Errorf("console lacks %q after position %d (order: %q)", w, at, want)
			return
		}
		at += i + len(w)
	}
}
