package boot_test

import (
	"strings"
	"testing"

	"berth/internal/vm"
)

const watchdogConfig = `
[board]
watchdog_timeout = "8s"

[[container]]
name = "wedge"
image = "/images/demo.tar.zst"
command = ["/bin/sh", "-c", "sleep 20; echo still alive after 20s; berth debug hang"]
` + vm.BerthCLIMounts

// TestQEMUWatchdog arms QEMU's i6300esb with an 8 s timeout (a 3 s one
// could fire while a loaded host starved QEMU): the supervisor keeps the
// machine up through 20 s of normal running, then, once the
// supervisor loop hangs (a test hook of berth.debug), the watchdog resets
// the machine — QEMU, run with -no-reboot, exits — and berth itself never
// got to shut down. Its initramfs holds no overlay module, so it also
// shows containers falling back to private copies of their image.
func TestQEMUWatchdog(t *testing.T) {
	out, err := bootAppliance(t, appliance{
		arch: "amd64", config: watchdogConfig, modules: []string{"i6300esb"},
		vm:   vm.Config{Append: []string{"berth.debug"}, ExtraQEMU: []string{"-device", "i6300esb", "-watchdog-action", "reset"}},
		ends: "reset",
	})
	if err != nil {
		t.Errorf("QEMU did not exit by itself: %v", err)
	}
	wantLines(t, out, "modules loaded: [watchdog i6300esb]", "watchdog /dev/watchdog armed", "watchdog timeout 8s",
		"wedge | still alive after 20s", "debug: the supervisor loop hangs now",
		"containers get private copies of their images", "image /images/demo.tar.zst unpacked for wedge")
	hang := strings.Index(out, "debug: the supervisor loop hangs now")
	if hang >= 0 {
		for _, bad := range []string{"berth: reboot", "berth: power off", "syncing"} {
			if strings.Contains(out[hang:], bad) {
				t.Errorf("berth shut down by itself (%q) instead of the watchdog resetting it", bad)
			}
		}
	}
}
