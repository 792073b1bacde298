package boot_test

import (
	"encoding/json"
	"strings"
	"testing"

	"berth/boot"
	"berth/internal/vm"
)

// superviseConfig is an appliance with dependencies, a crash loop, a
// memory hog, a CPU burner whose first process survives the OOM kill of
// its child, and a management container that drives berth over its
// control socket with the berth binary bind-mounted from the host.
const superviseConfig = `
hostname = "supervised"

[[container]]
name = "db"
image = "/images/demo.tar.zst"
restart = "always"
stop_timeout = "3s"
command = ["/bin/sh", "-c", "trap 'echo db stopping; exit 0' TERM; echo db up; while :; do sleep 1; done"]
[container.health]
command = ["/bin/sh", "-c", "grep -qx $$ /sys/fs/cgroup/cgroup.procs && echo in-cgroup"]
interval = "1s"

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
name = "burn"
image = "/images/demo.tar.zst"
after = ["web"]
stop_timeout = "1s"
command = ["/bin/sh", "-c", "tail /dev/zero; echo burning; while :; do :; done"]
[container.limits]
memory = "16M"
pids = 8

[[container]]
name = "admin"
image = "/images/demo.tar.zst"
after = ["web"]
oneshot = true
command = ["/bin/sh", "/demo/admin.sh"]
` + vm.BerthCLIMounts + `
[[container.mount]]
source = "/etc"
target = "/host/etc"
[[container.mount]]
source = "/sys/fs/cgroup/berth.init"
target = "/host/init-cgroup"
readonly = true
`

// adminScript runs in the management container.
const adminScript = `#!/bin/sh
# Let the crash loop and the memory hog play out first.
while ! berth ps | grep -q '^hog .*failed'; do sleep 0.5; done
while ! berth ps | grep -q '^crash .*failed'; do sleep 0.5; done
while ! berth logs burn | grep -q burning; do sleep 0.5; done
berth stats --json -i 3s burn | tr -d ' ' | sed 's/^/stats=/'
berth ps --json | tr -d ' ' | sed 's/^/ps=/'
while ! berth ps | grep -q '^db .*healthy'; do sleep 0.5; done
echo "== PID 1's cgroup: $(grep populated /host/init-cgroup/cgroup.events), cpu.weight $(cat /host/init-cgroup/cpu.weight)"
echo "== health $(berth status | grep '^health' | tr -s ' ')"
berth stats
berth stop burn
echo "== ps"
berth ps
echo "== logs"
berth logs -n 1 web
echo "== exec $(berth exec web -- sh -c 'echo $(hostname) $VERSION; grep -qx $$ /sys/fs/cgroup/cgroup.procs && echo in-cgroup; [ "$(readlink /proc/1/ns/pid)" = "$(readlink /proc/self/ns/pid)" ] && echo same-pidns; grep "^Seccomp:" /proc/self/status' | tr '\t\n' '  ')"
berth exec web -- sh -c 'exit 3'; echo "== exec status $?"
berth exec web -- sh -c 'touch /tmp/execed; exec sleep 1000' & sleeper=$!
until berth exec web -- test -e /tmp/execed; do sleep 0.1; done
berth stop web
while ! berth ps | grep -q '^web .*stopped'; do sleep 0.2; done
echo "== web is stopped"
wait $sleeper; echo "== exec after stop $?"
berth exec web -- true; echo "== exec into stopped $?"
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
// management container (berth exec into web: its hostname, cgroup, PID
// namespace and seccomp, its status, its end with web), db's health
// check (run in db's cgroup), berth stats and berth ps --json of the burner,
// and SIGTERM to PID 1 stopping everything in reverse dependency order.
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
			defer func() {
				if t.Failed() {
					t.Logf("console:\n%s", out)
				}
			}()
			if err != nil {
				t.Errorf("QEMU did not exit cleanly: %v", err)
			}
			wantLines(t, out,
				"container crash: restart 1 in 100ms", "container crash: restart 3 in 400ms",
				"container crash failed: restarted 3 times within 10m0s (max_restarts = 3): giving up",
				"container hog killed: out of memory (limit 16 MiB)", "container hog: restart 1 in 100ms",
				"container hog failed: restarted 1 times within 10m0s (max_restarts = 1): giving up",
				"admin | == PID 1's cgroup: populated 1, cpu.weight 10", "admin | == ps", "admin | web up 1", "admin | == web is stopped",
				"admin | == health health db: healthy, failing streak 0, last check", `status 0 "in-cgroup"`,
				"admin | == exec web 1 in-cgroup same-pidns Seccomp: 2", "admin | == exec status 3",
				"admin | == exec after stop 137", "admin | == exec into stopped 124",
				"stopping container web (SIGTERM", "web | web stopping", "container web stopped",
				"generation 2 committed: changed [web]", "web | web up 2", "admin | == web runs its new definition",
				"got terminated: shutting down (reboot)",
				"container admin stopped in", "container db stopped in",
				"berth: reboot",
				// PID 1's background remount (favorDynmods) kept nsdelegate.
				"cgroup2 at /sys/fs/cgroup remounted: rw,nsdelegate,favordynmods",
			)
			// The runtime's monitor slowed while PID 1 boots, and only then.
			inOrder(t, out, "timer slack 2ms until the images are ready", "images: all ready", "): default timer slack")
			inOrder(t, out, "container db started", "container migrate started", "migrate | migrated",
				"container migrate exited with status 0", "container web started")
			inOrder(t, out, "got terminated", "stopping container admin", "stopping container web", "stopping container db", "berth: reboot")
			// While the hog was killed and restarted, db and web ran on.
			_, ps, _ := strings.Cut(out, "admin | == ps")
			ps, _, found := strings.Cut(ps, "admin | == logs")
			for _, w := range []string{"db", "web"} {
				if !found || !strings.Contains(ps, "admin | "+w+" ") || !strings.Contains(ps, "running") {
					t.Errorf("ps does not show %s running", w)
				}
			}
			checkGuestStats(t, out)
		})
	}
}

// checkGuestStats checks what berth stats --json and berth ps --json said
// of the burner on cgroup v2: about one CPU (the guest's only one, which
// berth, the other containers and the admin's own berth stats use a
// little of), its child's OOM kill, a peak at its 16 MiB limit, its
// one process of 8 allowed. The guest has no block device: its I/O is not
// checked here.
func checkGuestStats(t *testing.T, out string) {
	t.Helper()
	var stats []boot.ContainerStats
	var procs []boot.Process
	for prefix, v := range map[string]any{"admin | stats=": &stats, "admin | ps=": &procs} {
		text := consoleLines(out, prefix)
		if text == "" {
			t.Errorf("console lacks %q", prefix)
			return
		}
		if err := json.Unmarshal([]byte(text), v); err != nil {
			t.Errorf("%s%s: %v", prefix, text, err)
			return
		}
	}
	if len(stats) != 1 || stats[0].Stats == nil {
		t.Fatalf("berth stats --json burn: %+v", stats)
	}
	st := stats[0].Stats
	val := func(v *int64) int64 {
		if v == nil {
			return -1
		}
		return *v
	}
	if p := st.CPUPercent; p == nil || *p < 50 || *p > 110 {
		t.Errorf("burn: CPU %v, want about 100%% of the guest's CPU", p)
	}
	if val(st.OOMKills) < 1 || val(st.MemoryLimit) != 16<<20 || val(st.Pids) != 1 || val(st.PidsLimit) != 8 {
		t.Errorf("burn: oom_kills %d, memory limit %d, pids %d / %d; want at least 1, 16 MiB, 1 / 8",
			val(st.OOMKills), val(st.MemoryLimit), val(st.Pids), val(st.PidsLimit))
	}
	if peak := val(st.MemoryPeak); peak < 15<<20 || peak > 16<<20 {
		t.Errorf("burn: memory.peak %d, want near the 16 MiB limit", peak)
	}
	if st.CPUUsec == nil || st.Memory == nil || st.Error != "" {
		t.Errorf("burn: cpu_usage_usec %v, memory %v, error %q", st.CPUUsec, st.Memory, st.Error)
	}
	for _, p := range procs {
		if p.Name == "burn" && (p.Stats == nil || val(p.Stats.OOMKills) < 1 || val(p.Stats.MemoryPeak) < 15<<20) {
			t.Errorf("berth ps --json: burn's stats %+v", p.Stats)
		}
	}
}

// consoleLines joins what follows prefix on each console line that holds
// it, in order: a container's JSON printed a line at a time, since the
// console shows at most 512 bytes of a line (berth logs keeps all of it).
func consoleLines(out, prefix string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(line, prefix); ok {
			b.WriteString(strings.TrimRight(rest, "\r"))
		}
	}
	return b.String()
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
