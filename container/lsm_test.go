package container

import (
	"strings"
	"testing"

	"berth/internal/testutil"
)

// TestMissingLSMIsAnError checks a container asking for AppArmor or
// SELinux on a kernel without it (this host's) does not start, and the
// error says why: it must never run unconfined.
func TestMissingLSMIsAnError(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	for _, tc := range []struct {
		name    string
		present bool
		spec    Spec
		want    string
	}{
		{"apparmor", AppArmorEnabled(), Spec{AppArmor: "web"}, `apparmor profile "web": the kernel has no AppArmor`},
		{"selinux", SELinuxEnabled(), Spec{SELinuxLabel: "system_u:system_r:container_t:s0"}, `selinux label "system_u:system_r:container_t:s0": the kernel has no SELinux`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.present {
				t.Skipf("this kernel runs %s", tc.name)
			}
			tc.spec.Args = []string{"echo", "ran"}
			_, out, err := run(t, rootfs, tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("start error %v (output %q); want %q", err, out, tc.want)
			}
		})
	}
}
