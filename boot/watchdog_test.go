package boot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWatchdogNotADevice: a [board] watchdog that names a file, a disk
// or a character device other than a watchdog is refused before berth
// writes a byte to it (a ping or the magic close would land at its
// start); the config refuses a path that only looks as if it is under
// /dev.
func TestWatchdogNotADevice(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hostname")
	if err := os.WriteFile(file, []byte("vm\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dev, want string }{
		{file, "not a watchdog: not a character device"},
		{dir, "not a watchdog: not a character device"},
		{"/dev/null", "not a watchdog: character device 1:3 is not in /sys/class/watchdog"},
		{"/dev/zero", "not a watchdog: character device 1:5 is not in /sys/class/watchdog"},
		{filepath.Join(dir, "none"), "no such file or directory"},
	} {
		_, err := openWatchdog(tc.dev, 30*time.Second)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.dev, err, tc.want)
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "vm\n" {
		t.Errorf("the file holds %q after the refusal", b)
	}
	// A device of the watchdog class, as sysfs names it, is taken: here
	// /dev/null's number, with a stand-in for /sys/dev/char.
	sys := t.TempDir()
	var st unix.Stat_t
	if err := unix.Stat("/dev/null", &st); err != nil {
		t.Fatal(err)
	}
	num := fmt.Sprintf("%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
	os.MkdirAll(filepath.Join(sys, num), 0o755)
	if err := os.Symlink("../../../class/watchdog", filepath.Join(sys, num, "subsystem")); err != nil {
		t.Fatal(err)
	}
	defer func(old string) { sysDevChar = old }(sysDevChar)
	sysDevChar = sys
	if rdev, err := watchdogDevice("/dev/null"); err != nil || rdev != uint64(st.Rdev) {
		t.Errorf("a device of class watchdog: %d, %v", rdev, err)
	}

	for _, dev := range []string{"/dev/../etc/passwd", "/dev/./watchdog", "/dev//watchdog", "/dev/watchdog/", "dev/watchdog"} {
		_, err := ParseConfig("b.toml", []byte("[board]\nwatchdog = \""+dev+"\"\n"))
		if err == nil || !strings.Contains(err.Error(), "b.toml:2: board.watchdog: want a device under /dev (a clean path)") {
			t.Errorf("watchdog = %q: %v", dev, err)
		}
	}
	for _, dev := range []string{"/dev/watchdog", "/dev/watchdog1", "none"} {
		if _, err := ParseConfig("b.toml", []byte("[board]\nwatchdog = \""+dev+"\"\n")); err != nil {
			t.Errorf("watchdog = %q: %v", dev, err)
		}
	}
}
