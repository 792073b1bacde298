package boot_test

import (
	"strings"
	"testing"

	"berth/board"
)

// isolationConfig runs, on a cgroup v2 guest, the probe that tries every
// escape, the device program's allow-list, the v2 limits, and the limits
// berth's own init must not count against.
const isolationConfig = `
[[container]]
name = "probe"
image = "/images/demo.tar.zst"
command = ["/bin/probe", "all", "2"] # 2: the host's kthreadd
[container.limits]
memory = "64M"
pids = 64

[[container]]
name = "devices"
image = "/images/demo.tar.zst"
cap_add = ["MKNOD"]
devices = ["/dev/kmsg"]
command = ["/bin/sh", "-c", """
mknod /tmp/null c 1 3 && head -c0 /tmp/null && echo default node allowed
mknod /tmp/mem c 1 1 2>/dev/null || echo mknod of /dev/mem refused
echo berth-device-test > /dev/kmsg && echo passed-through device writable
"""]

[[container]]
name = "limits"
image = "/images/demo.tar.zst"
command = ["/bin/sh", "-c", """
echo cpu.max $(cat /sys/fs/cgroup/cpu.max)
echo memory.high $(cat /sys/fs/cgroup/memory.high)
echo memory.swap.max $(cat /sys/fs/cgroup/memory.swap.max)
echo cpu.weight $(cat /sys/fs/cgroup/cpu.weight)
echo pids.max $(cat /sys/fs/cgroup/pids.max)
"""]
[container.limits]
memory = "32M"
memory_high = "24M"
memory_swap = "8M"
cpus = 0.5
cpu_weight = 50
pids = 20

[[container]]
name = "tiny"
image = "/images/demo.tar.zst"
command = ["/bin/echo", "ran under pids.max=1 and 1 MiB"]
[container.limits]
memory = "1M"
pids = 1

[[container]]
name = "userns"
image = "/images/demo.tar.zst"
user_ns = true
init = true
command = ["/bin/sh", "-c", "echo userns uid $(id -u) map $(cat /proc/self/uid_map); echo root dir owner $(ls -lnd / | awk '{print $3}'); echo pid 1 $(head -c 10 /proc/1/cmdline); touch /made && mkdir /newdir && echo wrote as root"]

# In a user namespace, a bind of the host's / (berth's 0700 state
# included): the init gets it as a mount, read-only with its submounts
# (/tmp, /run, /proc...). The target is under /tmp: the namespace's root may not create
# directories in the image's root.
[[container]]
name = "userns-bind"
image = "/images/demo.tar.zst"
user_ns = true
command = ["/bin/sh", "-c", """
test -f /tmp/host/etc/berth.toml && echo host root readable
awk '$5 == "/tmp/host" && $6 ~ /^ro(,|$)/' /proc/self/mountinfo | grep -q . && echo bind read-only
touch /tmp/host/tmp/x 2>/dev/null || echo world-writable submount read-only
test $(awk '$5 ~ "^/tmp/host/" && $6 !~ /^ro/' /proc/self/mountinfo | wc -l) = 0 && echo every submount read-only
test -d /tmp/host/var/lib/berth/containers/probe && echo state dir reached
"""]
[[container.mount]]
source = "/"
target = "/tmp/host"
readonly = true

[[container]]
name = "forkbomb"
image = "/images/demo.tar.zst"
command = ["/bin/probe", "forkbomb"]
[container.limits]
pids = 10

# The probe's keyctl and unshare-user without the seccomp filter: keyctl is
# allowed and unshare reaches the kernel (which refuses CLONE_NEWUSER to a
# multithreaded caller with EINVAL), so it is the architecture's filter
# that denies both to "probe" with EPERM.
[[container]]
name = "unconfined"
image = "/images/demo.tar.zst"
seccomp = "unconfined"
command = ["/bin/sh", "-c", "/bin/probe all 2 | grep -E '^(keyctl|unshare-user):'"]
`

// bridgeProbeConfig runs the probe again in a container on the bridge.
const bridgeProbeConfig = `
[[container]]
name = "probe-bridge"
image = "/images/demo.tar.zst"
net = "bridge"
command = ["/bin/probe", "all", "2"]
[container.limits]
memory = "64M"
pids = 64
`

// probes are the escapes the probe tries.
var probes = []string{"mount-tmpfs", "mknod", "reboot", "unshare-user", "keyctl", "ptrace-other-user",
	"write-sysrq-trigger", "read-kcore", "see-host-pid", "write-exe", "write-proc-sys", "write-cgroup"}

// TestQEMUIsolation checks the runtime on a pure cgroup v2 guest (the host
// is v1): the probe's escapes are all denied, from a bridge container too
// (keyctl and unshare-user by the seccomp filter: unconfined, keyctl is
// allowed and unshare gets the kernel's own answer), the eBPF device program allows exactly the default
// nodes and the passed-through device, the v2 limit files hold what the
// config asked for, limits too small for a Go process still start a
// busybox command, a user-namespaced container under berth's init sees
// its image's owners and writes in its root (through the image's shifted
// copy: the guest's tmpfs cannot be idmapped), and one gets recursive
// read-only binds without reaching berth's 0700 state.
func TestQEMUIsolation(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			out, err := bootAppliance(t, appliance{
				arch: arch, config: isolationConfig + bridgeProbeConfig,
				programs: map[string]string{"bin/probe": "./container/testdata/probe"},
				modules:  append([]string{"overlay"}, board.NetModules...),
			})
			if err != nil {
				t.Errorf("QEMU did not exit cleanly: %v", err)
			}
			isolationChecks(t, out)
			// Debian 12's 6.1 kernel cannot idmap the guest's tmpfs: the
			// image's shifted copy is the user namespace's lower layer.
			wantLines(t, out, "warning: idmapped image for a user namespace: this kernel cannot idmap a mount of its filesystem (type 0x1021994)")
			var bridged []string
			for _, p := range probes {
				bridged = append(bridged, "probe-bridge | "+p+": denied")
			}
			wantLines(t, out, bridged...)
		})
	}
}

// isolationChecks are what isolationConfig shows on the console.
func isolationChecks(t *testing.T, out string) {
	t.Helper()
	var want []string
	for _, p := range probes {
		want = append(want, "probe | "+p+": denied")
	}
	for _, p := range []string{"unshare-user", "keyctl"} {
		want = append(want, "probe | "+p+": denied (operation not permitted)")
	}
	want = append(want,
		"devices | default node allowed",
		"devices | mknod of /dev/mem refused",
		"devices | passed-through device writable",
		"limits | cpu.max 50000 100000",
		"limits | memory.high 25165824",
		"limits | memory.swap.max 8388608",
		"limits | cpu.weight 50",
		"limits | pids.max 20",
		"tiny | ran under pids.max=1 and 1 MiB",
		"container tiny exited with status 0",
		"userns | userns uid 0 map 0 100000 65536",
		"userns | root dir owner 0",
		"userns | pid 1 berth-init",
		"userns | wrote as root",
		"userns-bind | host root readable",
		"userns-bind | bind read-only",
		"userns-bind | world-writable submount read-only",
		"userns-bind | every submount read-only",
		"forkbomb | forked",
		"resource temporarily unavailable",
		"unconfined | keyctl: allowed",
		"unconfined | unshare-user: denied (invalid argument)",
		"berth: power off",
	)
	wantLines(t, out, want...)
	if strings.Contains(out, "state dir reached") {
		t.Error("a user-namespaced container reached another container's state directory")
	}
}
