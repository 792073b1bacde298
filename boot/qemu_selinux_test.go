package boot_test

import (
	"os"
	"strings"
	"testing"

	"berth/internal/vm"
)

// selinuxScript shows the container's label and the context its tmpfs
// mounts carry.
const selinuxScript = `command = ["/bin/sh", "-c", "echo label $(cat /proc/self/attr/current); grep -o 'context=[^ ]*' /proc/self/mountinfo | sort -u | sed 's/^/mount /'"]`

// selinuxConfig loads Debian's reference policy and runs containers in
// the labels it defines, and Landlock ones on a kernel without Landlock.
const selinuxConfig = `
[security]
selinux_policy = "/etc/selinux/policy.33"

[[container]]
name = "nolabel"
image = "/images/demo.tar.zst"
oneshot = true
` + selinuxScript + `

[[container]]
name = "initrc"
image = "/images/demo.tar.zst"
selinux_label = "system_u:system_r:initrc_t:s0"
oneshot = true
` + selinuxScript + `
[[container.mount]]
type = "tmpfs"
target = "/scratch"

[[container]]
name = "unconfined"
image = "/images/demo.tar.zst"
selinux_label = "unconfined_u:unconfined_r:unconfined_t:s0"
oneshot = true
` + selinuxScript + `

[[container]]
name = "filelabel"
image = "/images/demo.tar.zst"
selinux_label = "unconfined_u:unconfined_r:unconfined_t:s0"
selinux_mount_label = "system_u:object_r:tmpfs_t:s0"
oneshot = true
` + selinuxScript + `

[[container]]
name = "invalid"
image = "/images/demo.tar.zst"
selinux_label = "nobody_u:nothing_r:nothing_t:s0"
command = ["/bin/echo", "ran outside its label"]

[[container]]
name = "landlock"
image = "/images/demo.tar.zst"
command = ["/bin/echo", "ran without landlock"]
[container.landlock]
read = ["/bin"]

[[container]]
name = "landlock-best-effort"
image = "/images/demo.tar.zst"
oneshot = true
command = ["/bin/echo", "best effort ran without landlock"]
[container.landlock]
read = ["/bin"]
best_effort = true

[[container]]
name = "landlock-best-effort-userns"
image = "/images/demo.tar.zst"
user_ns = true
oneshot = true
command = ["/bin/echo", "best effort ran without landlock"]
[container.landlock]
read = ["/bin"]
best_effort = true
`

// enforcingConfig runs, under the reference policy enforced, a
// container in berth's own domain, and containers whose transitions the
// policy refuses (see README, Security modules).
const enforcingConfig = `
[security]
selinux_policy = "/etc/selinux/policy.33"

[[container]]
name = "same"
image = "/images/demo.tar.zst"
selinux_label = "system_u:system_r:kernel_t:s0"
selinux_mount_label = "system_u:object_r:tmpfs_t:s0"
oneshot = true
` + selinuxScript + `

[[container]]
name = "nnp"
image = "/images/demo.tar.zst"
selinux_label = "system_u:system_r:initrc_t:s0"
selinux_mount_label = "system_u:object_r:tmpfs_t:s0"
command = ["/bin/echo", "ran outside its label"]

[[container]]
name = "no-nnp"
image = "/images/demo.tar.zst"
selinux_label = "system_u:system_r:initrc_t:s0"
selinux_mount_label = "system_u:object_r:tmpfs_t:s0"
no_new_privileges = false
command = ["/bin/echo", "ran outside its label"]

[[container]]
name = "process-type-mount"
image = "/images/demo.tar.zst"
selinux_label = "system_u:system_r:kernel_t:s0"
command = ["/bin/echo", "ran with a tmpfs of a process type"]
`

// TestQEMUSELinux boots a Debian kernel with SELinux and without
// Landlock (lsm=), twice. Permissive (the kernel's default): berth loads
// Debian's reference policy in one write, each labelled container runs
// in its label, read back from /proc/self/attr/current, and its tmpfs
// mounts carry its label or its mount label; a label the policy does not
// define fails that container's start, saying so; a Landlock container
// fails to start, saying the kernel has none, unless it is best effort
// (direct or user-namespaced: its init then hands berth no ruleset).
// Enforcing: a container runs in berth's own domain with a file type on
// its tmpfs, while those the policy refuses never run: under
// no_new_privs the exec fails with EPERM (nnp_transition), without it
// with EACCES (transition, entrypoint), and a tmpfs labelled with a
// process type cannot be mounted — each error saying why.
func TestQEMUSELinux(t *testing.T) {
	policy := readPolicy(t)
	boot := func(t *testing.T, config string, cmdline ...string) string {
		out, err := bootAppliance(t, appliance{
			arch: "amd64", config: config,
			initrd: map[string]string{"etc/selinux/policy.33": policy},
			vm:     vm.Config{Append: append([]string{"lsm=lockdown,yama,selinux,bpf", "selinux=1", "loglevel=7"}, cmdline...)},
		})
		if err != nil {
			t.Errorf("QEMU did not exit cleanly: %v", err)
		}
		return out
	}
	t.Run("permissive", func(t *testing.T) {
		out := boot(t, selinuxConfig)
		wantLines(t, out,
			"selinux policy /etc/selinux/policy.33 loaded",
			"security modules: lockdown,capability,yama,selinux,bpf; landlock ABI 0",
			"nolabel | label system_u:system_r:kernel_t:s0",
			"initrc | label system_u:system_r:initrc_t:s0",
			"initrc | mount context=system_u:system_r:initrc_t:s0,mode=755",    // /scratch
			"initrc | mount context=system_u:system_r:initrc_t:s0,size=65536k", // /dev/shm
			"unconfined | label unconfined_u:unconfined_r:unconfined_t:s0",
			"filelabel | label unconfined_u:unconfined_r:unconfined_t:s0",
			"filelabel | mount context=system_u:object_r:tmpfs_t:s0,size=65536k",
			`container invalid could not start: selinux label "nobody_u:nothing_r:nothing_t:s0": not a valid context of the loaded policy`,
			`container landlock could not start: landlock: the kernel has no Landlock`,
			"landlock-best-effort | best effort ran without landlock",
			"landlock-best-effort-userns | best effort ran without landlock",
		)
		for _, bad := range []string{"ran outside its label", "landlock | ran without landlock", "nolabel | mount context="} {
			if strings.Contains(out, bad) {
				t.Errorf("console shows %q", bad)
			}
		}
	})
	t.Run("enforcing", func(t *testing.T) {
		out := boot(t, enforcingConfig, "enforcing=1")
		wantLines(t, out,
			"selinux policy /etc/selinux/policy.33 loaded",
			"same | label system_u:system_r:kernel_t:s0",
			"same | mount context=system_u:object_r:tmpfs_t:s0,size=65536k",
			"container nnp could not start: exec /bin/echo: operation not permitted (the SELinux policy may refuse the transition to system_u:system_r:initrc_t:s0",
			"container no-nnp could not start: exec /bin/echo: permission denied (the SELinux policy may refuse the transition to system_u:system_r:initrc_t:s0",
			"container process-type-mount could not start: mount /dev/shm: create tmpfs: permission denied",
		)
		for _, bad := range []string{"ran outside its label", "ran with a tmpfs of a process type"} {
			if strings.Contains(out, bad) {
				t.Errorf("console shows %q", bad)
			}
		}
	})
}

// selinuxPolicy is Debian's reference policy as selinux-policy-default
// compiles it when installed (make lsm-deps).
const selinuxPolicy = "/etc/selinux/default/policy/policy.33"

func readPolicy(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(selinuxPolicy)
	if err != nil {
		t.Fatalf("SELinux policy (make lsm-deps installs it): %v", err)
	}
	return string(data)
}
