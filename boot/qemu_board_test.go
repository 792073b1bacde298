package boot_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/board"
	"berth/internal/testutil"
	"berth/internal/vm"
)

// piConfig asks for a memory limit in one container and none in the other.
const piConfig = `
hostname = "pi"

[[container]]
name = "limited"
image = "/images/demo.tar.zst"
command = ["/bin/sh", "-c", "echo limited runs"]
[container.limits]
memory = "32M"

[[container]]
name = "plain"
image = "/images/demo.tar.zst"
command = ["/bin/sh", "-c", "echo plain runs as $(hostname)"]
`

// TestQEMURaspberryPi3 boots Debian's arm64 kernel on QEMU's raspi3b with
// the Raspberry Pi 3 Model B device tree of Debian's package, its console
// on the mini UART (QEMU's second serial port; the first goes nowhere) as
// the raspberrypi-3 profile names it.
//
// "watchdog": the initramfs holds the profile's modules. berth detects the
// board, loads bcm2835_wdt and, in the config phase, arms /dev/watchdog. QEMU 7.2 (Debian 12)
// models the BCM2835 power manager without the watchdog's countdown: any
// write that arms it (RSTC with the full-reset configuration, which is
// how bcm2835_wdt starts and pings) resets the machine at once, and QEMU,
// run with -no-reboot, exits. A QEMU that counts down lets the boot run
// to its power-off, which bcm2835_wdt also provides.
//
// "memory cgroup": without bcm2835_wdt (so nothing resets the machine),
// booted with cgroup_disable=memory as Raspberry Pi firmware writes it:
// berth warns that the container asking for a memory limit will not
// start, and why; the other one runs. Without bcm2835_wdt the kernel
// cannot power the board off and halts, as a real Pi would.
func TestQEMURaspberryPi3(t *testing.T) {
	repo := testutil.RepoRoot()
	pi := vm.Boards["raspi3b"]
	var profile board.Profile
	for _, p := range board.Profiles {
		if p.Name == "raspberrypi-3" {
			profile = p
		}
	}
	if profile.Console != pi.Console {
		t.Fatalf("profile raspberrypi-3 has console %q; the Pi 3 device tree's stdout is %q", profile.Console, pi.Console)
	}
	dtb, err := vm.DeviceTree(repo, pi.GOARCH, pi.DTB)
	if err != nil {
		t.Fatal(err)
	}
	detected := `board: Raspberry Pi 3 Model B (from /proc/device-tree/model), profile raspberrypi-3 (device tree compatible "raspberrypi,3-model-b")`
	t.Run("watchdog", func(t *testing.T) {
		t.Parallel()
		demo, err := os.ReadFile(filepath.Join(repo, "demo", "berth.toml"))
		if err != nil {
			t.Fatal(err)
		}
		out, err := bootAppliance(t, appliance{
			arch: pi.GOARCH, config: string(demo), modules: profile.Modules,
			vm:   vm.Config{Board: "raspi3b", DTB: dtb},
			ends: "any", // a reset on QEMU 7.2, else a power-off
		})
		if err != nil {
			t.Errorf("QEMU did not exit by itself: %v", err)
		}
		// overlay first, for the containers; the watchdog's driver once
		// the first container has started.
		wantLines(t, out, detected)
		if strings.Contains(out, "watchdog /dev/watchdog armed") {
			// A QEMU that models the countdown.
			wantLines(t, out, "modules loaded: [overlay bcm2835_wdt]", "container hog killed: out of memory (limit 24 MiB)", "berth: power off")
			return
		}
		// QEMU 7.2's raspi3b resets at once when bcm2835_wdt starts the
		// watchdog, as it loads or as berth arms it: the boot got as far
		// as a container's start before, and no further than the
		// modules' line.
		started := strings.Index(out, " started: pid ")
		if started < 0 {
			t.Errorf("no container started before the watchdog's driver reset the board:\n%s", out)
		}
		// The reset can come while the line is being written: a cut
		// line counts if what reached the console is its beginning.
		if loaded := strings.Index(out, "modules loaded:"); loaded >= 0 &&
			(loaded < started || !linePrefixOf(out[loaded:], "modules loaded: [overlay bcm2835_wdt]")) {
			t.Errorf("the watchdog's driver loaded before the first container started, or before overlay:\n%s", out)
		}
	})
	t.Run("memory cgroup", func(t *testing.T) {
		t.Parallel()
		out, err := bootAppliance(t, appliance{
			arch: pi.GOARCH, config: piConfig, modules: []string{"overlay"},
			vm:    vm.Config{Board: "raspi3b", DTB: dtb, Append: []string{"cgroup_disable=memory"}},
			until: "reboot: System halted",
		})
		if err != nil {
			t.Errorf("QEMU: %v", err)
		}
		wantLines(t, out, detected,
			"WARNING: the kernel's memory cgroup controller is disabled, but container limited asks for a memory limit and will not start: "+
				"the kernel command line has cgroup_disable=memory (Raspberry Pi firmware adds it)",
			"container limited could not start",
			"plain | plain runs as plain",
			"container plain exited with status 0",
			"berth: power off")
		if strings.Contains(out, "limited runs") {
			t.Error("the container whose memory limit cannot be set ran")
		}
	})
}

// linePrefixOf reports whether the first line of s is want, or, when s
// ends inside that line (a board reset cut it), the beginning of want.
func linePrefixOf(s, want string) bool {
	line, _, complete := strings.Cut(s, "\n")
	line = strings.TrimRight(line, "\r")
	if complete {
		return strings.HasPrefix(line, want)
	}
	return strings.HasPrefix(want, line) || strings.HasPrefix(line, want)
}

func TestLinePrefixOf(t *testing.T) {
	const want = "modules loaded: [overlay bcm2835_wdt]"
	for _, c := range []struct {
		s  string
		ok bool
	}{
		{want + "\n[ 9.1] berth: next", true},
		{want + "\r\n", true},
		{want, true},
		{"modules loaded: [ove", true}, // the reset cut it
		{"modules loaded: [", true},
		{"modules loaded: [bcm2835_wdt]\n", false},
		{"modules loaded: [bcm", false},
		{"modules loaded: [ove\nmore", false}, // a whole line, not the one wanted
	} {
		if got := linePrefixOf(c.s, want); got != c.ok {
			t.Errorf("linePrefixOf(%q) = %v, want %v", c.s, got, c.ok)
		}
	}
}
