package container

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"berth/internal/testutil"
)

// probeRootfs is a busybox rootfs with the probe (testdata/probe) at
// /bin/probe.
func probeRootfs(t *testing.T) string {
	t.Helper()
	rootfs := testutil.BusyboxRootfs(t)
	build := exec.Command("go", "build", "-o", filepath.Join(rootfs, "bin", "probe"), "./testdata/probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	return rootfs
}

// TestDefaultIsolation runs the probe in a container with the defaults
// and checks that each escape it tries is denied.
func TestDefaultIsolation(t *testing.T) {
	rootfs := probeRootfs(t)
	exit, out, err := run(t, rootfs, Spec{
		Limits: Limits{Memory: 64 << 20, Pids: 64},
		Args:   []string{"/bin/probe", "all", fmt.Sprint(os.Getpid())},
	})
	if err != nil {
		t.Fatal(err)
	}
	if exit.Status() != 0 {
		t.Fatalf("probe: %s\n%s", exit, out)
	}
	for _, name := range []string{
		"mount-tmpfs", "mknod", "reboot", "unshare-user", "keyctl", "ptrace-other-user",
		"write-sysrq-trigger", "read-kcore", "see-host-pid", "write-exe", "write-proc-sys",
		"write-cgroup", "open-host-disk",
	} {
		if !strings.Contains(out, name+": denied") {
			t.Errorf("%s was not denied", name)
		}
	}
	if t.Failed() {
		t.Logf("probe output:\n%s", out)
	}
}

// TestUnconfinedAllowsMore checks the probe can tell: with seccomp
// unconfined and every capability, what the defaults deny goes through.
func TestUnconfinedAllowsMore(t *testing.T) {
	rootfs := probeRootfs(t)
	caps, err := ResolveCaps([]string{"ALL"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, out, err := run(t, rootfs, Spec{Seccomp: "unconfined", Caps: caps, Args: []string{"/bin/probe", "all", "1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mount-tmpfs", "keyctl", "ptrace-other-user"} {
		if !strings.Contains(out, name+": allowed") {
			t.Errorf("%s denied even unconfined with all capabilities:\n%s", name, out)
		}
	}
}

// TestGuarantees checks one guarantee of the runtime per row, from inside.
func TestGuarantees(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "hello"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(hostDir, "ctl.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("pong\n"))
			c.Close()
		}
	}()
	adj := 500
	// An fd berth's process leaks without close-on-exec must still not
	// reach the workload.
	leak, err := syscall.Open("/etc/hostname", syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(leak)
	tests := []struct {
		name string
		spec Spec
		cmd  string
		want string // a line of the output
	}{
		{"net none has only lo", Spec{}, "ls /sys/class/net", "lo"},
		{"net host sees the host's interfaces", Spec{Net: "host"}, "test $(ls /sys/class/net | wc -l) -gt 1 && echo more-than-lo", "more-than-lo"},
		{"readonly root", Spec{ReadonlyRoot: true}, "touch /x 2>&1 || echo refused", "refused"},
		{"writable root by default", Spec{}, "touch /x && echo wrote", "wrote"},
		{"bind mount a directory", Spec{Mounts: []Mount{{Source: hostDir, Target: "/host"}}}, "cat /host/hello", "from the host"},
		{"read-only bind mount", Spec{Mounts: []Mount{{Source: hostDir, Target: "/host", Readonly: true}}}, "touch /host/y 2>&1 || echo refused", "refused"},
		{"bind mount a single file", Spec{Mounts: []Mount{{Source: filepath.Join(hostDir, "hello"), Target: "/etc/hello"}}}, "cat /etc/hello", "from the host"},
		{"bind mount a socket", Spec{Mounts: []Mount{{Source: sock, Target: "/run/ctl.sock"}}}, "test -S /run/ctl.sock && echo socket", "socket"},
		{"no host fd reaches the workload", Spec{}, "ls /proc/self/fd | tr '\\n' ' '", "0 1 2 3"},
		{"tmpfs with a size", Spec{Mounts: []Mount{{Type: "tmpfs", Target: "/scratch", Size: 1 << 20}}}, "df -k /scratch | tail -1 | awk '{print $2}'", "1024"},
		{"mount target through a symlink stays inside", Spec{Mounts: []Mount{{Type: "tmpfs", Target: "/evil/inside"}}}, "ls -d /evil/inside", "/evil/inside"},
		{"device passthrough", Spec{Devices: []string{"/dev/net/tun"}}, "stat -c '%F %t:%T' /dev/net/tun && head -c0 /dev/net/tun && echo opened", "character special file a:c8"},
		{"device cgroup refuses other nodes", Spec{Caps: mustCaps(t, []string{"MKNOD"}, nil)}, "mknod /tmp/null c 1 3 && echo made-null; mknod /tmp/mem c 1 1 2>/dev/null || echo refused-mem", "refused-mem"},
		{"default capabilities", Spec{}, "grep CapEff /proc/self/status", "CapEff:\t00000000000005fb"},
		{"cap_drop", Spec{Caps: mustCaps(t, nil, []string{"CHOWN", "kill"})}, "grep CapBnd /proc/self/status", "CapBnd:\t00000000000005da"},
		{"cap_add", Spec{Caps: mustCaps(t, []string{"NET_ADMIN"}, nil)}, "grep CapEff /proc/self/status", "CapEff:\t00000000000015fb"},
		// Dropping every capability is none, not "unset" (the defaults).
		{"cap_drop ALL", Spec{Caps: mustCaps(t, nil, []string{"ALL"})}, "grep -E 'CapEff|CapBnd' /proc/self/status | tr -d '\t' | tr '\n' ' '", "CapEff:0000000000000000 CapBnd:0000000000000000"},
		{"cap_drop every default", Spec{Caps: mustCaps(t, nil, DefaultCaps)}, "grep CapBnd /proc/self/status", "CapBnd:\t0000000000000000"},
		{"cap_drop ALL in a user namespace", Spec{UserNS: defaultNS(), Caps: mustCaps(t, nil, []string{"ALL"})}, "grep CapBnd /proc/self/status", "CapBnd:\t0000000000000000"},
		{"no inheritable or ambient", Spec{}, "grep -E 'CapInh|CapAmb' /proc/self/status | tr -d '\\t' | tr '\\n' ' '", "CapInh:0000000000000000 CapAmb:0000000000000000"},
		{"no signal blocked", Spec{}, "grep SigBlk /proc/self/status", "SigBlk:\t0000000000000000"},
		{"no_new_privs on by default", Spec{}, "grep NoNewPrivs /proc/self/status", "NoNewPrivs:\t1"},
		{"no_new_privs off", Spec{AllowNewPrivileges: true}, "grep NoNewPrivs /proc/self/status", "NoNewPrivs:\t0"},
		{"seccomp on by default", Spec{}, "grep '^Seccomp:' /proc/self/status", "Seccomp:\t2"},
		{"seccomp unconfined", Spec{Seccomp: "unconfined"}, "grep '^Seccomp:' /proc/self/status", "Seccomp:\t0"},
		{"user and groups", Spec{User: User{UID: 1000, GID: 1001, Groups: []uint32{20, 30}}}, "id", "uid=1000 gid=1001 groups=20,30"},
		{"non-root user has no capabilities", Spec{User: User{UID: 1000, GID: 1000}}, "grep CapEff /proc/self/status", "CapEff:\t0000000000000000"},
		{"rlimits", Spec{Rlimits: []Rlimit{{Name: "nofile", Soft: 100, Hard: 200}}}, "ulimit -n; ulimit -Hn", "100"},
		{"oom_score_adj", Spec{OOMScoreAdj: &adj}, "cat /proc/self/oom_score_adj", "500"},
		{"working directory", Spec{Cwd: "/var/work"}, "pwd", "/var/work"},
		{"masked path", Spec{}, "ls /sys/firmware | wc -l", "0"},
		{"read-only proc/sys", Spec{}, "echo 1 > /proc/sys/kernel/ns_last_pid 2>&1 || echo refused", "refused"},
		{"ipc namespace", Spec{}, "ls /dev/mqueue && cat /proc/sysvipc/shm | wc -l", "1"},
		{"cgroup namespace: its cgroup is its root", Spec{}, "grep -vc ':/$' /proc/self/cgroup", "0"},
		{"cpu limit", Spec{Limits: Limits{CPUs: ptr(0.5)}}, "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null | head -1", "50000"},
		{"cpuset", Spec{Limits: Limits{CPUSet: "0"}}, "cat /sys/fs/cgroup/cpuset/cpuset.cpus /sys/fs/cgroup/cpuset.cpus 2>/dev/null | head -1", "0"},
	}
	if err := os.MkdirAll(filepath.Join(rootfs, "evil"), 0o755); err != nil {
		t.Fatal(err)
	}
	// /evil/inside's parent is a symlink to / in the rootfs: the mount
	// must land in the rootfs, not on the host's root.
	os.Remove(filepath.Join(rootfs, "evil"))
	if err := os.Symlink("/", filepath.Join(rootfs, "evil")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.Args = []string{"sh", "-c", tc.cmd}
			exit, out, err := run(t, rootfs, spec)
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			if tc.want != "" && !containsLine(out, tc.want) {
				t.Errorf("output lacks %q (%s):\n%s", tc.want, exit, out)
			}
		})
	}
	if _, err := os.Stat("/inside"); err == nil {
		t.Error("a mount target through a symlink created /inside on the host")
	}
}

func mustCaps(t *testing.T, add, drop []string) []string {
	caps, err := ResolveCaps(add, drop)
	if err != nil {
		t.Fatal(err)
	}
	return caps
}

// TestForkBombStopsAtPidsMax forks until the kernel refuses and checks
// it refused at pids.max, and that the container and its children are
// all gone afterwards.
func TestForkBombStopsAtPidsMax(t *testing.T) {
	rootfs := probeRootfs(t)
	exit, out, err := run(t, rootfs, Spec{Limits: Limits{Pids: 16}, Args: []string{"/bin/probe", "forkbomb"}})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscanf(out, "forked %d", &n); err != nil || n >= 16 || !strings.Contains(out, "resource temporarily unavailable") {
		t.Fatalf("fork bomb: %q (%s); want fork to fail with EAGAIN below pids.max=16", out, exit)
	}
}

// TestUserNamespace maps the container's root to an unprivileged host uid.
func TestUserNamespace(t *testing.T) {
	// The namespace's root is host uid 100000, which cannot reach the
	// rootfs through the test's 0700 directories: berth hands it over as a
	// mount, not as a path.
	rootfs := testutil.BusyboxRootfs(t)
	if err := os.Chmod(filepath.Dir(rootfs), 0o700); err != nil {
		t.Fatal(err)
	}
	ns := &UserNS{UIDMap: []IDMap{{0, 100000, 65536}}, GIDMap: []IDMap{{0, 100000, 65536}}}
	exit, out, err := run(t, rootfs, Spec{UserNS: ns, Args: []string{"sh", "-c", "id -u; cat /proc/self/uid_map"}})
	if err != nil {
		t.Fatal(err)
	}
	if !containsLine(out, "0") || !strings.Contains(out, "100000") {
		t.Errorf("uid inside and map: %q (%s)", out, exit)
	}
}

// TestStaleCgroupsCleaned leaves a cgroup as a killed berth run would and
// checks the next start removes it.
func TestStaleCgroupsCleaned(t *testing.T) {
	layout, err := DetectCgroups()
	if err != nil {
		t.Fatal(err)
	}
	// A pid that does not exist: above pid_max.
	name := "run-99999999"
	dirs, _ := layout.cgroupDirs(name)
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removed := layout.CleanStale(false)
	if !slicesContains(removed, name) {
		t.Fatalf("removed %v, want %s", removed, name)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s still there", d)
		}
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestHostileImages starts containers whose image layout aims a mount at
// the container's root, at berth's own mount points or out of the root.
// Each start must be refused with an error naming the problem, and nothing
// may change on the host: not the volume, not the rootfs's top directory.
func TestHostileImages(t *testing.T) {
	hostLink := filepath.Join(t.TempDir(), "etc-link")
	if err := os.Symlink("/etc", hostLink); err != nil {
		t.Fatal(err)
	}
	bind := func(target string, ro bool) func(string) []Mount {
		return func(vol string) []Mount { return []Mount{{Source: vol, Target: target, Readonly: ro}} }
	}
	tmpfs := func(target string) func(string) []Mount {
		return func(string) []Mount { return []Mount{{Type: "tmpfs", Target: target}} }
	}
	tests := []struct {
		name   string
		links  map[string]string        // image entries replaced by symlinks
		mounts func(vol string) []Mount // vol: a host directory, which must stay empty
		fail   string
	}{
		{"bind of / at a target that is a symlink to /", map[string]string{"host": "/"},
			func(string) []Mount { return []Mount{{Source: "/", Target: "/host", Readonly: true}} }, "/host resolves to the container's root"},
		{"read-only bind at a target that is a symlink to /", map[string]string{"data": "/"}, bind("/data", true), "/data resolves to the container's root"},
		{"tmpfs at a target that is a symlink to /", map[string]string{"data": "/"}, tmpfs("/data"), "/data resolves to the container's root"},
		{"bind at a target that is a symlink into /proc", map[string]string{"data": "/proc/sys"}, bind("/data", false), "/data resolves into /proc"},
		{"tmpfs at a target that is a symlink to /sys/fs/cgroup", map[string]string{"data": "/sys/fs/cgroup"}, tmpfs("/data"), "/data resolves into /sys"},
		{"bind at a target that is a symlink to /dev", map[string]string{"data": "/dev"}, bind("/data", false), "/data resolves to /dev"},
		{"/proc is a symlink (CVE-2019-19921)", map[string]string{"proc": "/tmp"}, nil, "/proc is a symlink"},
		{"/proc is a symlink to /", map[string]string{"proc": "/"}, nil, "/proc is a symlink"},
		{"/sys is a symlink to /", map[string]string{"sys": "/"}, nil, "/sys is a symlink"},
		{"/dev is a symlink to /", map[string]string{"dev": "/"}, nil, "/dev is a symlink"},
		{"bind source is a symlink", nil, func(string) []Mount { return []Mount{{Source: hostLink, Target: "/x"}} }, hostLink + " is a symlink"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rootfs := testutil.BusyboxRootfs(t)
			for name, to := range tc.links {
				if err := os.RemoveAll(filepath.Join(rootfs, name)); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(to, filepath.Join(rootfs, name)); err != nil {
					t.Fatal(err)
				}
			}
			vol := t.TempDir()
			var mounts []Mount
			if tc.mounts != nil {
				mounts = tc.mounts(vol)
			}
			before := listDir(t, rootfs)
			exit, out, err := run(t, rootfs, Spec{Mounts: mounts, Args: []string{"sh", "-c", "ls /; touch /hostile-was-here"}})
			if err == nil || !strings.Contains(err.Error(), tc.fail) {
				t.Errorf("start: %v (%s, output %q), want an error containing %q", err, exit, out, tc.fail)
			}
			if got := listDir(t, vol); got != "" {
				t.Errorf("the host directory now holds %s", got)
			}
			if after := listDir(t, rootfs); after != before {
				t.Errorf("the rootfs's top directory changed: %s, was %s", after, before)
			}
			if _, err := os.Stat("/hostile-was-here"); err == nil {
				os.Remove("/hostile-was-here")
				t.Error("the workload wrote to the host's /")
			}
		})
	}
}

func listDir(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}

// TestBindSourceSymlink binds a host path whose last component is a
// symlink: refused by default, bound as its target with FollowSymlink.
// A symlink on the way (a directory another container could swap) and a
// magic link are refused the same way, naming the link.
func TestBindSourceSymlink(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	dir, err := filepath.EvalSymlinks(t.TempDir()) // the links named are the test's own
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "real"), []byte("through the link\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("real", link); err != nil {
		t.Fatal(err)
	}
	_, _, err = run(t, rootfs, Spec{Mounts: []Mount{{Source: link, Target: "/x"}}, Args: []string{"cat", "/x"}})
	if err == nil || !strings.Contains(err.Error(), "is a symlink") {
		t.Errorf("start: %v, want the symlinked source refused", err)
	}
	exit, out, err := run(t, rootfs, Spec{Mounts: []Mount{{Source: link, Target: "/x", FollowSymlink: true}}, Args: []string{"cat", "/x"}})
	if err != nil || !containsLine(out, "through the link") {
		t.Errorf("follow_symlink: %v (%s), output %q", err, exit, out)
	}
	// A directory on the way swapped for a symlink to elsewhere.
	elsewhere := t.TempDir()
	if err := os.WriteFile(filepath.Join(elsewhere, "real"), []byte("elsewhere\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	swapped := filepath.Join(dir, "swapped")
	if err := os.Symlink(elsewhere, swapped); err != nil {
		t.Fatal(err)
	}
	proc := fmt.Sprintf("/proc/%d/root", os.Getpid())
	for src, link := range map[string]string{filepath.Join(swapped, "real"): swapped, proc + filepath.Join(dir, "real"): proc} {
		_, out, err = run(t, rootfs, Spec{Mounts: []Mount{{Source: src, Target: "/x"}}, Args: []string{"cat", "/x"}})
		if err == nil || !strings.Contains(err.Error(), link+" is a symlink, which berth does not follow") || out != "" {
			t.Errorf("source %s: %v, output %q: want it refused, naming %s", src, err, out, link)
		}
	}
	exit, out, err = run(t, rootfs, Spec{Mounts: []Mount{{Source: filepath.Join(swapped, "real"), Target: "/x", FollowSymlink: true}}, Args: []string{"cat", "/x"}})
	if err != nil || !containsLine(out, "elsewhere") {
		t.Errorf("follow_symlink through a directory: %v (%s), output %q", err, exit, out)
	}
}

// TestBindHandle: a mount whose source was opened already binds that
// directory, whatever its Source path names by then; a volume nobody
// resolved to a directory is refused, naming it.
func TestBindHandle(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	opened, swapped := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(opened, "which"), []byte("the opened directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(swapped, "which"), []byte("what the path names now\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := os.OpenFile(opened, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	exit, out, err := run(t, rootfs, Spec{Mounts: []Mount{{Source: swapped, Handle: h, Target: "/v"}}, Args: []string{"cat", "/v/which"}})
	if err != nil || !containsLine(out, "the opened directory") {
		t.Errorf("bind of a handle: %v (%s), output %q", err, exit, out)
	}
	_, _, err = run(t, rootfs, Spec{Mounts: []Mount{{Volume: "web", Target: "/v"}}, Args: []string{"true"}})
	if err == nil || !strings.Contains(err.Error(), "volume web has no host directory") {
		t.Errorf("unresolved volume: %v", err)
	}
}

// TestReadonlyBindIsRecursive binds a host directory holding a submount
// read-only: the submount must be read-only in the container too.
func TestReadonlyBindIsRecursive(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	vol := t.TempDir()
	sub := filepath.Join(vol, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(sub, syscall.MNT_DETACH)
	_, out, err := run(t, rootfs, Spec{
		Mounts: []Mount{{Source: vol, Target: "/vol", Readonly: true}},
		Args:   []string{"sh", "-c", "touch /vol/top 2>/dev/null && echo top writable; touch /vol/sub/x 2>/dev/null && echo submount writable; echo done"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !containsLine(out, "done") || strings.Contains(out, "writable") {
		t.Errorf("read-only bind with a submount: %q", out)
	}
	if _, err := os.Stat(filepath.Join(sub, "x")); err == nil {
		t.Error("the container wrote into the submount of a read-only bind")
	}
}

// TestDeepMountTarget mounts a tmpfs 2000 directories deep, at a target
// the image does not have yet.
func TestDeepMountTarget(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	target := "/" + strings.TrimSuffix(strings.Repeat("d/", 2000), "/")
	exit, out, err := run(t, rootfs, Spec{
		Mounts: []Mount{{Type: "tmpfs", Target: target}},
		Args:   []string{"sh", "-c", "cd " + target + " && touch x && stat -f -c %T . "},
	})
	if err != nil || !containsLine(out, "tmpfs") {
		t.Fatalf("deep target: %v (%s), output %q", err, exit, out)
	}
}

// TestNoMountLeaksToHost puts the rootfs and a bind source on shared
// mounts, as systemd makes them, and mounts inside both from the
// container: the host must not see a single mount appear.
func TestNoMountLeaksToHost(t *testing.T) {
	shared := func(dir string) {
		if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
		if err := syscall.Mount("", dir, "", syscall.MS_SHARED, ""); err != nil {
			t.Fatal(err)
		}
	}
	rootfs := testutil.BusyboxRootfs(t)
	shared(filepath.Dir(rootfs))
	vol := t.TempDir()
	shared(vol)
	before := mountsUnder(t, filepath.Dir(rootfs), vol)
	_, out, err := run(t, rootfs, Spec{
		Mounts: []Mount{{Source: vol, Target: "/vol"}, {Type: "tmpfs", Target: "/vol/inner"}},
		Args:   []string{"sh", "-c", "grep -c ' /vol/inner ' /proc/self/mountinfo"},
	})
	if err != nil || !containsLine(out, "1") {
		t.Fatalf("start: %v, output %q", err, out)
	}
	if after := mountsUnder(t, filepath.Dir(rootfs), vol); after != before {
		t.Errorf("mounts under the rootfs and the volume on the host: %s, were %s", after, before)
	}
}

// mountsUnder lists the host's mount points under the dirs.
func mountsUnder(t *testing.T, dirs ...string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		for _, d := range dirs {
			if len(f) > 4 && strings.HasPrefix(f[4], d) {
				points = append(points, f[4])
			}
		}
	}
	return strings.Join(points, " ")
}

// TestWorkdirStaysInRoot: a working directory that names a magic link
// (the first process's own cwd, berth's until it execs, a host
// directory) or climbs out is refused, and nothing is made on the host:
// berth creates the working directory as host root, inside the root only.
func TestWorkdirStaysInRoot(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	host := t.TempDir()
	if err := os.Chmod(host, 0o777); err != nil { // writable by a user namespace's root too
		t.Fatal(err)
	}
	t.Chdir(host)
	ns := &UserNS{UIDMap: []IDMap{{0, 100000, 65536}}, GIDMap: []IDMap{{0, 100000, 65536}}}
	for _, userns := range []*UserNS{nil, ns} {
		for _, cwd := range []string{"/proc/1/cwd/escaped", "/proc/self/cwd/escaped", "/proc/1/root/escaped", "/proc/thread-self/cwd/escaped"} {
			exit, out, err := run(t, rootfs, Spec{Cwd: cwd, UserNS: userns, Args: []string{"pwd"}})
			if err == nil {
				t.Errorf("workdir %s (user namespace %v): started (%s, output %q), want an error", cwd, userns != nil, exit, out)
			}
			if got := listDir(t, host); got != "" {
				t.Fatalf("workdir %s (user namespace %v): berth's working directory on the host now holds %s", cwd, userns != nil, got)
			}
		}
	}
	// An ordinary missing working directory is still made, in the root.
	exit, out, err := run(t, rootfs, Spec{Cwd: "/srv/app", Args: []string{"pwd"}})
	if err != nil || exit.Status() != 0 || !containsLine(out, "/srv/app") {
		t.Errorf("workdir /srv/app: %v, %s, output %q", err, exit, out)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "srv", "app")); err != nil {
		t.Errorf("workdir /srv/app was not made in the root: %v", err)
	}
}
