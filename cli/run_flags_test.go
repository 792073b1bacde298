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
	// A device node berth does not make by default, that this host has.
	node := ""
	for _, n := range []string{"/dev/loop-control", "/dev/net/tun", "/dev/fuse"} {
		if fi, err := os.Stat(n); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			node = n
			break
		}
	}
	if node == "" {
		t.Skip("no /dev/loop-control, /dev/net/tun or /dev/fuse here")
	}
	// The limits are given and read from v1's files where the host is v1,
	// as here (cgroup v2's are tested in QEMU, through the config keys
	// these flags set).
	v1 := !isCgroup2Root("/sys/fs/cgroup")
	script := `grep -E '^(NoNewPrivs|Seccomp|CapBnd|Groups):' /proc/self/status
cat /proc/self/oom_score_adj
test -c ` + node + ` && (: <>` + node + `) && echo device
cg=/sys/fs/cgroup
if test -d $cg/memory; then
echo high $(cat $cg/memory/memory.soft_limit_in_bytes)
if test -f $cg/memory/memory.memsw.limit_in_bytes; then echo swap $(cat $cg/memory/memory.memsw.limit_in_bytes); else echo swap none; fi
echo io $(cat $cg/blkio/blkio.throttle.read_bps_device)
fi`
	args := []string{"run", "--device", node, "--cap-drop", "KILL", "--no-new-privileges=false", "--group-add", "1234",
		"--oom-score-adj", "123", "--seccomp", "unconfined"}
	if v1 {
		args = append(args, "--memory", "64M", "--memory-high", "48M", "--memory-swap", "48M", "--io-max", dev+" rbps=1048576")
	}
	status, stdout, stderr := berth(t, append(args, rootfs, "--", "sh", "-c", script)...)
	if status != 0 {
		t.Fatalf("berth run: status %d\n%s%s", status, stdout, stderr)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		f := strings.Fields(line)
		got[strings.TrimSuffix(f[0], ":")] = strings.Join(f[1:], " ")
	}
	// Without the flags: the defaults they change. The oom_score_adj is
	// the caller's, inherited.
	own, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	status, out0, stderr := berth(t, "run", rootfs, "--", "sh", "-c",
		`grep -E '^(NoNewPrivs|Seccomp|CapBnd):' /proc/self/status; cat /proc/self/oom_score_adj; test -e `+node+` || echo none`)
	var capBnd uint64
	if _, err := fmt.Sscanf(out0, "CapBnd:\t%x\nNoNewPrivs:\t1\nSeccomp:\t2\n"+string(own)+"none\n", &capBnd); status != 0 || err != nil || capBnd&(1<<5) == 0 {
		t.Fatalf("defaults: status %d %v\n%q\n%s", status, err, out0, stderr)
	}
	// CAP_KILL is bit 5.
	want := map[string]string{
		"CapBnd": fmt.Sprintf("%016x", capBnd&^(1<<5)), "Groups": "1234", "123": "", "device": "",
	}
	// What the flags turn off stays on when the caller (a CI's container)
	// has it on already: it is inherited.
	status0, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(status0), "\nNoNewPrivs:\t0\n") {
		want["NoNewPrivs"] = "0"
	}
	if strings.Contains(string(status0), "\nSeccomp:\t0\n") {
		want["Seccomp"] = "0"
	}
	if v1 {
		want["high"], want["swap"], want["io"] = "50331648", "117440512", dev+" 1048576"
		if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err != nil {
			want["swap"] = "none" // no swap accounting on this host
		}
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
