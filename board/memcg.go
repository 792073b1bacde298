package board

import (
	"os"
	"slices"
	"strings"
)

// MemoryCgroupHint says why the kernel's memory cgroup controller is off
// and what turns it on, from the kernel command line (/proc/cmdline). On a
// Raspberry Pi it is off either way: Raspberry Pi firmware writes
// cgroup_disable=memory into the command line it passes, and Raspberry Pi
// kernels leave the controller off unless cgroup_enable=memory comes
// after that — a parameter mainline kernels, Debian's among them, do not
// have.
func MemoryCgroupHint() string {
	data, _ := os.ReadFile("/proc/cmdline")
	return memoryCgroupHint(string(data))
}

func memoryCgroupHint(cmdline string) string {
	for _, arg := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(arg, "cgroup_disable="); ok && slices.Contains(strings.Split(v, ","), "memory") {
			return "the kernel command line has cgroup_disable=memory (Raspberry Pi firmware adds it): " +
				"remove it, or on a Raspberry Pi kernel add cgroup_enable=memory after it"
		}
	}
	return "add cgroup_enable=memory to the kernel command line (Raspberry Pi kernels need it), " +
		"or use a kernel built with CONFIG_MEMCG"
}
