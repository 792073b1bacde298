package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/internal/testutil"
)

// blockDevice returns MAJ:MIN of a block device of this machine, a disk
// rather than a loop device when there is one.
func blockDevice(t *testing.T) string {
	t.Helper()
	names, _ := filepath.Glob("/sys/block/*/dev")
	dev := ""
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			continue
		}
		base := filepath.Base(filepath.Dir(n))
		if dev == "" || !strings.HasPrefix(base, "loop") && !strings.HasPrefix(base, "zram") {
			dev = strings.TrimSpace(string(b))
		}
	}
	if dev == "" {
		t.Skip("no block device in /sys/block")
	}
	return dev
}

// TestRunFlagsReachTheContainer runs, as a user would, the berth run
// flags the README lists as mirroring config keys that no other test
// runs, and reads each one's effect from inside the container: its
// capabilities, groups, oom_score_adj, no_new_privs, seccomp mode, device
// nodes and the cgroup files (v1 here) its limits are written to.
func TestRunFlagsReachTheContainer(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	dev := blockDevice(t)
	script := `grep -E '^(NoNewPrivs|Seccomp|CapBnd|Groups):' /proc/self/status
cat /proc/self/oom_score_adj
test -c /dev/loop-control && echo loop-control
cg=/sys/fs/cgroup
echo high $(cat $cg/memory/memory.soft_limit_in_bytes)
if test -f $cg/memory/memory.memsw.limit_in_bytes; then echo swap $(cat $cg/memory/memory.memsw.limit_in_bytes); else echo swap none; fi
echo io $(cat $cg/blkio/blkio.throttle.read_bps_device)`
	status, stdout, stderr := berth(t, "run", "--memory", "64M", "--memory-high", "48M", "--memory-swap", "48M",
		"--io-max", dev+" rbps=1048576", "--device", "/dev/loop-control", "--cap-drop", "KILL",
		"--no-new-privileges=false", "--group-add", "1234", "--oom-score-adj", "123", "--seccomp", "unconfined",
		rootfs, "--", "sh", "-c", script)
	if status != 0 {
		t.Fatalf("berth run: status %d\n%s%s", status, stdout, stderr)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		f := strings.Fields(line)
		got[strings.TrimSuffix(f[0], ":")] = strings.Join(f[1:], " ")
	}
	// Without the flags: the defaults they change.
	status, out0, stderr := berth(t, "run", rootfs, "--", "sh", "-c",
		`grep -E '^(NoNewPrivs|Seccomp|CapBnd):' /proc/self/status; cat /proc/self/oom_score_adj; test -e /dev/loop-control || echo none`)
	var capBnd uint64
	if _, err := fmt.Sscanf(out0, "CapBnd:\t%x\nNoNewPrivs:\t1\nSeccomp:\t2\n0\nnone\n", &capBnd); status != 0 || err != nil || capBnd&(1<<5) == 0 {
		t.Fatalf("defaults: status %d %v\n%q\n%s", status, err, out0, stderr)
	}
	// CAP_KILL is bit 5.
	want := map[string]string{
		"NoNewPrivs": "0", "Seccomp": "0", "CapBnd": fmt.Sprintf("%016x", capBnd&^(1<<5)), "Groups": "1234",
		"123": "", "loop-control": "", "high": "50331648", "swap": "117440512", "io": dev + " 1048576",
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err != nil {
		want["swap"] = "none" // no swap accounting on this host
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: got %q (present %v), want %q\n%s", k, g, ok, v, stdout)
		}
	}
}

// TestRunGIDMap: --gid-map alone implies --userns, and the uid map is
// then the default one.
func TestRunGIDMap(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	status, stdout, stderr := berth(t, "run", "--gid-map", "0:300000:1000", rootfs, "--", "sh", "-c",
		"cat /proc/self/gid_map /proc/self/uid_map")
	f := strings.Fields(stdout)
	if status != 0 || len(f) != 6 || f[0] != "0" || f[1] != "300000" || f[2] != "1000" || f[3] != "0" || f[4] == "0" {
		t.Fatalf("status %d, maps %q\n%s", status, stdout, stderr)
	}
}
