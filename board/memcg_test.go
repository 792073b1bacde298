package board

import (
	"strings"
	"testing"
)

func TestMemoryCgroupHint(t *testing.T) {
	tests := []struct {
		cmdline, want string
	}{
		{"console=ttyS1,115200 cgroup_disable=memory rootwait", "has cgroup_disable=memory"},
		{"coherent_pool=1M cgroup_disable=cpuset,memory", "has cgroup_disable=memory"},
		{"console=ttyS1 cgroup_disable=cpuset", "add cgroup_enable=memory"},
		{"console=ttyS1 memory=cgroup_disable", "add cgroup_enable=memory"},
		{"", "add cgroup_enable=memory"},
	}
	for _, tc := range tests {
		if got := memoryCgroupHint(tc.cmdline); !strings.Contains(got, tc.want) {
			t.Errorf("%q: %q, want %q in it", tc.cmdline, got, tc.want)
		}
	}
}
