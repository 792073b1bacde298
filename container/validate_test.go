package container

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// TestValidate checks every rule of Spec.Validate at its edge and just
// past it; each bad spec must yield an error for the right key.
func TestValidate(t *testing.T) {
	ok := func() Spec { return Spec{Name: "web", Args: []string{"/bin/true"}} }
	tests := []struct {
		name string
		edit func(*Spec)
		key  string // "" means valid
	}{
		{"minimal", func(*Spec) {}, ""},
		{"empty name", func(s *Spec) { s.Name = "" }, "name"},
		{"name 63", func(s *Spec) { s.Name = strings.Repeat("a", 63) }, ""},
		{"name 64", func(s *Spec) { s.Name = strings.Repeat("a", 64) }, "name"},
		{"no command", func(s *Spec) { s.Args = nil }, "command"},
		{"uid 4294967294", func(s *Spec) { s.User = User{UID: 4294967294, GID: 4294967294, Groups: []uint32{4294967294}} }, ""},
		{"uid 4294967295", func(s *Spec) { s.User.UID = 4294967295 }, "user"},
		{"gid 4294967295", func(s *Spec) { s.User.GID = 4294967295 }, "user"},
		{"group 4294967295", func(s *Spec) { s.User.Groups = []uint32{4294967295} }, "groups"},
		{"named run-N", func(s *Spec) { s.Name = "run-123" }, "name"},
		{"run-N with its own cgroup", func(s *Spec) { s.Name, s.Cgroup = "run-123", "run-123" }, ""},
		{"pids 4194304", func(s *Spec) { s.Limits.Pids = 4194304 }, ""},
		{"pids 4194305", func(s *Spec) { s.Limits.Pids = 4194305 }, "limits.pids"},
		{"empty command", func(s *Spec) { s.Args = []string{""} }, "command"},
		{"NUL in argument", func(s *Spec) { s.Args = []string{"/bin/x", "a\x00b"} }, "command"},
		{"env without =", func(s *Spec) { s.Env = []string{"FOO"} }, "env"},
		{"env empty key", func(s *Spec) { s.Env = []string{"=x"} }, "env"},
		{"env empty value", func(s *Spec) { s.Env = []string{"FOO="} }, ""},
		{"relative workdir", func(s *Spec) { s.Cwd = "srv" }, "workdir"},
		{"workdir with ..", func(s *Spec) { s.Cwd = "/srv/../etc" }, "workdir"},
		{"hostname 63", func(s *Spec) { s.Hostname = strings.Repeat("h", 63) }, ""},
		{"hostname 64", func(s *Spec) { s.Hostname = strings.Repeat("h", 64) }, "hostname"},
		{"hostname underscore", func(s *Spec) { s.Hostname = "a_b" }, "hostname"},
		{"hostname leading dash", func(s *Spec) { s.Hostname = "-a" }, "hostname"},
		{"net bridge", func(s *Spec) { s.Net = "bridge" }, ""},
		{"net nat", func(s *Spec) { s.Net = "nat" }, "net"},
		{"ports", func(s *Spec) {
			s.Net, s.Ports = "bridge", []string{"8080:80", "5353:53/udp", "8080:80/udp", "65535:1/tcp"}
		}, ""},
		{"ports without bridge", func(s *Spec) { s.Ports = []string{"8080:80"} }, "ports"},
		{"port 0", func(s *Spec) { s.Net, s.Ports = "bridge", []string{"0:80"} }, "ports"},
		{"port 65536", func(s *Spec) { s.Net, s.Ports = "bridge", []string{"8080:65536"} }, "ports"},
		{"port sctp", func(s *Spec) { s.Net, s.Ports = "bridge", []string{"8080:80/sctp"} }, "ports"},
		{"port without container", func(s *Spec) { s.Net, s.Ports = "bridge", []string{"8080"} }, "ports"},
		{"port with address", func(s *Spec) { s.Net, s.Ports = "bridge", []string{"127.0.0.1:8080:80"} }, "ports"},
		{"port negative", func(s *Spec) { s.Net, s.Ports = "bridge", []string{"-1:80"} }, "ports"},
		{"port twice", func(s *Spec) { s.Net, s.Ports = "bridge", []string{"8080:80", "8080:81/tcp"} }, "ports"},
		{"too many ports", func(s *Spec) { s.Net, s.Ports = "bridge", manyPorts(MaxPorts+1) }, "ports"},
		{"most ports", func(s *Spec) { s.Net, s.Ports = "bridge", manyPorts(MaxPorts) }, ""},
		{"net host", func(s *Spec) { s.Net = "host" }, ""},
		{"default maps", func(s *Spec) { s.UserNS = defaultNS() }, ""},
		{"map without root", func(s *Spec) { s.UserNS = defaultNS(); s.UserNS.UIDMap[0].Container = 1 }, "uid_map"},
		{"map size 0", func(s *Spec) { s.UserNS = defaultNS(); s.UserNS.GIDMap[0].Size = 0 }, "gid_map"},
		{"map to 2^32-2", func(s *Spec) { s.UserNS = defaultNS(); s.UserNS.UIDMap[0] = IDMap{0, 1<<32 - 1 - 65536, 65536} }, ""},
		{"map to 2^32-1", func(s *Spec) { s.UserNS = defaultNS(); s.UserNS.UIDMap[0] = IDMap{0, 1<<32 - 65536, 65536} }, "uid_map"},
		{"map past 2^32", func(s *Spec) { s.UserNS = defaultNS(); s.UserNS.UIDMap[0] = IDMap{0, 1<<32 - 65535, 65536} }, "uid_map"},
		{"maps overlap inside", func(s *Spec) {
			s.UserNS = defaultNS()
			s.UserNS.UIDMap = append(s.UserNS.UIDMap, IDMap{65535, 300000, 1})
		}, "uid_map"},
		{"maps overlap outside", func(s *Spec) {
			s.UserNS = defaultNS()
			s.UserNS.UIDMap = append(s.UserNS.UIDMap, IDMap{70000, 100001, 1})
		}, "uid_map"},
		{"maps adjacent", func(s *Spec) {
			s.UserNS = defaultNS()
			s.UserNS.UIDMap = append(s.UserNS.UIDMap, IDMap{65536, 165536, 1})
		}, ""},
		{"user not mapped", func(s *Spec) { s.UserNS = defaultNS(); s.User.UID = 70000 }, "uid_map"},
		{"group not mapped", func(s *Spec) { s.UserNS = defaultNS(); s.User.Groups = []uint32{70000} }, "gid_map"},
		{"340 maps", func(s *Spec) { s.UserNS = manyMaps(340) }, ""},
		{"341 maps", func(s *Spec) { s.UserNS = manyMaps(341) }, "uid_map"},
		{"mount on /", func(s *Spec) { s.Mounts = []Mount{{Source: "/", Target: "/"}} }, "mount.target"},
		{"mount on /proc", func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "/proc"}} }, "mount.target"},
		{"mount under /proc", func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "/proc/sys"}} }, "mount.target"},
		{"mount on /sys/fs/cgroup", func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "/sys/fs/cgroup"}} }, "mount.target"},
		{"mount on /dev", func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "/dev"}} }, "mount.target"},
		{"mount under /dev", func(s *Spec) { s.Mounts = []Mount{{Source: "/dev/net/tun", Target: "/dev/net/tun"}} }, ""},
		{"mount /procfoo", func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "/procfoo"}} }, ""},
		{"mount with ..", func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "/data/../proc"}} }, "mount.target"},
		{"mount relative target", func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "data"}} }, "mount.target"},
		{"mount relative source", func(s *Spec) { s.Mounts = []Mount{{Source: "x", Target: "/data"}} }, "mount.source"},
		{"mount twice", func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "/d"}, {Source: "/y", Target: "/d/"}} }, "mount.target"},
		{"tmpfs with source", func(s *Spec) { s.Mounts = []Mount{{Type: "tmpfs", Source: "/x", Target: "/t"}} }, "mount.source"},
		{"bind with size", func(s *Spec) { s.Mounts = []Mount{{Source: "/x", Target: "/t", Size: 1}} }, "mount.size"},
		{"mount type nfs", func(s *Spec) { s.Mounts = []Mount{{Type: "nfs", Target: "/t"}} }, "mount.type"},
		{"volume", func(s *Spec) { s.Mounts = []Mount{{Volume: "web-data_1.x", Target: "/v"}} }, ""},
		{"volume and source", func(s *Spec) { s.Mounts = []Mount{{Volume: "v", Source: "/v", Target: "/v"}} }, "mount.volume"},
		{"volume with slash", func(s *Spec) { s.Mounts = []Mount{{Volume: "a/b", Target: "/v"}} }, "mount.volume"},
		{"volume ..", func(s *Spec) { s.Mounts = []Mount{{Volume: "..", Target: "/v"}} }, "mount.volume"},
		{"volume of 63 bytes", func(s *Spec) { s.Mounts = []Mount{{Volume: strings.Repeat("v", 63), Target: "/v"}} }, ""},
		{"volume of 1 byte", func(s *Spec) { s.Mounts = []Mount{{Volume: "9", Target: "/v"}} }, ""},
		{"volume starting with _", func(s *Spec) { s.Mounts = []Mount{{Volume: "_v", Target: "/v"}} }, "mount.volume"},
		{"volume starting with -", func(s *Spec) { s.Mounts = []Mount{{Volume: "-v", Target: "/v"}} }, "mount.volume"},
		{"volume with upper case", func(s *Spec) { s.Mounts = []Mount{{Volume: "V", Target: "/v"}} }, "mount.volume"},
		{"volume of 64 bytes", func(s *Spec) { s.Mounts = []Mount{{Volume: strings.Repeat("v", 64), Target: "/v"}} }, "mount.volume"},
		{"volume following symlinks", func(s *Spec) { s.Mounts = []Mount{{Volume: "v", Target: "/v", FollowSymlink: true}} }, "mount.volume"},
		{"tmpfs with volume", func(s *Spec) { s.Mounts = []Mount{{Type: "tmpfs", Volume: "v", Target: "/t"}} }, "mount.volume"},
		{"bind without source or volume", func(s *Spec) { s.Mounts = []Mount{{Target: "/t"}} }, "mount.source"},
		{"device outside /dev", func(s *Spec) { s.Devices = []string{"/etc/passwd"} }, "devices"},
		{"device with ..", func(s *Spec) { s.Devices = []string{"/dev/../etc/shadow"} }, "devices"},
		{"device berth makes", func(s *Spec) { s.Devices = []string{"/dev/null"} }, "devices"},
		{"device twice", func(s *Spec) { s.Devices = []string{"/dev/loop0", "/dev/sda", "/dev/loop0"} }, "devices"},
		{"devices near berth's", func(s *Spec) {
			s.Devices = []string{"/dev/nullx", "/dev/ttyS0", "/dev/tty0", "/dev/input/event0", "/dev/fuse"}
		}, ""},
		{"oom -1000", func(s *Spec) { s.OOMScoreAdj = ptr(-1000) }, ""},
		{"oom -1001", func(s *Spec) { s.OOMScoreAdj = ptr(-1001) }, "oom_score_adj"},
		{"oom 1001", func(s *Spec) { s.OOMScoreAdj = ptr(1001) }, "oom_score_adj"},
		{"oom 1000", func(s *Spec) { s.OOMScoreAdj = ptr(1000) }, ""},
		{"seccomp relative", func(s *Spec) { s.Seccomp = "profile.json" }, "seccomp"},
		{"rlimit soft above hard", func(s *Spec) { s.Rlimits = []Rlimit{{Name: "nofile", Soft: 2, Hard: 1}} }, "rlimits.nofile"},
		{"rlimit twice", func(s *Spec) { s.Rlimits = []Rlimit{{Name: "core", Hard: 1}, {Name: "core", Hard: 1}} }, "rlimits.core"},
		{"nofile at the kernel's most", func(s *Spec) { s.Rlimits = []Rlimit{{Name: "nofile", Soft: 1024, Hard: MaxNofile}} }, ""},
		{"nofile past the kernel's most", func(s *Spec) { s.Rlimits = []Rlimit{{Name: "nofile", Soft: 1024, Hard: MaxNofile + 1}} }, "rlimits.nofile"},
		{"nofile unlimited", func(s *Spec) { s.Rlimits = []Rlimit{{Name: "nofile", Soft: 1024, Hard: Unlimited}} }, "rlimits.nofile"},
		{"core unlimited", func(s *Spec) { s.Rlimits = []Rlimit{{Name: "core", Soft: Unlimited, Hard: Unlimited}} }, ""},
		{"memory 256K", func(s *Spec) { s.Limits.Memory = 256 << 10 }, ""},
		{"memory 100", func(s *Spec) { s.Limits.Memory = 100 }, "limits.memory"},
		{"memory 256K-1", func(s *Spec) { s.Limits.Memory = 256<<10 - 1 }, "limits.memory"},
		{"memory 0 (no limit)", func(s *Spec) { s.Limits.Memory = 0 }, ""},
		{"memory_high 256K", func(s *Spec) { s.Limits.MemoryHigh = 256 << 10 }, ""},
		{"memory_high 256K-1", func(s *Spec) { s.Limits.MemoryHigh = 256<<10 - 1 }, "limits.memory_high"},
		{"memory_high equal to memory", func(s *Spec) { s.Limits.Memory, s.Limits.MemoryHigh = 1<<20, 1<<20 }, ""},
		{"memory_high above memory", func(s *Spec) { s.Limits.Memory, s.Limits.MemoryHigh = 1<<20, 2<<20 }, "limits.memory_high"},
		{"swap without memory", func(s *Spec) { s.Limits.MemorySwap = 1 << 20 }, "limits.memory_swap"},
		{"swap unlimited", func(s *Spec) { s.Limits.Memory, s.Limits.MemorySwap = 1<<20, -1 }, ""},
		{"swap of a page", func(s *Spec) { s.Limits.Memory, s.Limits.MemorySwap = 1<<20, 4096 }, ""},
		{"swap under a page", func(s *Spec) { s.Limits.Memory, s.Limits.MemorySwap = 1<<20, 4095 }, "limits.memory_swap"},
		{"cpus 0.01", func(s *Spec) { s.Limits.CPUs = ptr(0.01) }, ""},
		{"cpus 0", func(s *Spec) { s.Limits.CPUs = ptr(0.0) }, "limits.cpus"},
		{"cpus 0.009", func(s *Spec) { s.Limits.CPUs = ptr(0.009) }, "limits.cpus"},
		{"cpus 8192", func(s *Spec) { s.Limits.CPUs = ptr(8192.0) }, ""},
		{"cpus 8192.01", func(s *Spec) { s.Limits.CPUs = ptr(8192.01) }, "limits.cpus"},
		{"cpus NaN", func(s *Spec) { s.Limits.CPUs = ptr(math.NaN()) }, "limits.cpus"},
		{"cpus inf", func(s *Spec) { s.Limits.CPUs = ptr(math.Inf(1)) }, "limits.cpus"},
		{"cpus 1e9", func(s *Spec) { s.Limits.CPUs = ptr(1e9) }, "limits.cpus"},
		{"cpu_weight 1", func(s *Spec) { s.Limits.CPUWeight = ptr[uint64](1) }, ""},
		{"cpu_weight 0", func(s *Spec) { s.Limits.CPUWeight = ptr[uint64](0) }, "limits.cpu_weight"},
		{"cpu_weight 10000", func(s *Spec) { s.Limits.CPUWeight = ptr[uint64](10000) }, ""},
		{"cpu_weight 10001", func(s *Spec) { s.Limits.CPUWeight = ptr[uint64](10001) }, "limits.cpu_weight"},
		{"io_weight 0", func(s *Spec) { s.Limits.IOWeight = ptr[uint64](0) }, "limits.io_weight"},
		{"io_weight 1", func(s *Spec) { s.Limits.IOWeight = ptr[uint64](1) }, ""},
		{"io_weight 10000", func(s *Spec) { s.Limits.IOWeight = ptr[uint64](10000) }, ""},
		{"io_weight 10001", func(s *Spec) { s.Limits.IOWeight = ptr[uint64](10001) }, "limits.io_weight"},
		{"cpuset ok", func(s *Spec) { s.Limits.CPUSet = "0-1,3" }, ""},
		{"cpuset backwards", func(s *Spec) { s.Limits.CPUSet = "3-1" }, "limits.cpuset"},
		{"cpuset open range", func(s *Spec) { s.Limits.CPUSet = "1-" }, "limits.cpuset"},
		{"cpuset huge", func(s *Spec) { s.Limits.CPUSet = "0-99999" }, "limits.cpuset"},
		{"pids negative", func(s *Spec) { s.Limits.Pids = -1 }, "limits.pids"},
		{"pids 0 (no limit)", func(s *Spec) { s.Limits.Pids = 0 }, ""},
		{"io_max bad", func(s *Spec) { s.Limits.IOMax = []string{"8:0 fast=1"} }, "limits.io_max"},
		{"landlock", func(s *Spec) { s.Landlock = &Landlock{Read: []string{"/", "/usr"}, Write: []string{"/tmp"}} }, ""},
		{"landlock empty", func(s *Spec) { s.Landlock = &Landlock{} }, ""},
		{"landlock relative", func(s *Spec) { s.Landlock = &Landlock{Read: []string{"usr"}} }, "landlock.read"},
		{"landlock dotdot", func(s *Spec) { s.Landlock = &Landlock{Write: []string{"/srv/../etc"}} }, "landlock.write"},
		{"landlock unclean", func(s *Spec) { s.Landlock = &Landlock{Write: []string{"/srv/"}} }, "landlock.write"},
		{"landlock NUL", func(s *Spec) { s.Landlock = &Landlock{Read: []string{"/a\x00b"}} }, "landlock.read"},
		{"landlock most paths", func(s *Spec) { s.Landlock = &Landlock{Read: manyPaths(MaxLandlockPaths)} }, ""},
		{"landlock too many paths", func(s *Spec) { s.Landlock = &Landlock{Write: manyPaths(MaxLandlockPaths + 1)} }, "landlock.write"},
		{"landlock longest path", func(s *Spec) { s.Landlock = &Landlock{Read: []string{"/" + strings.Repeat("a", 4094)}} }, ""},
		{"apparmor", func(s *Spec) { s.AppArmor = "berth-web" }, ""},
		{"apparmor longest", func(s *Spec) { s.AppArmor = strings.Repeat("p", MaxLabel) }, ""},
		{"apparmor too long", func(s *Spec) { s.AppArmor = strings.Repeat("p", MaxLabel+1) }, "apparmor"},
		{"apparmor newline", func(s *Spec) { s.AppArmor = "web\nexec other" }, "apparmor"},
		{"apparmor space", func(s *Spec) { s.AppArmor = "web other" }, "apparmor"},
		{"apparmor DEL", func(s *Spec) { s.AppArmor = "web\x7f" }, "apparmor"},
		{"selinux label", func(s *Spec) { s.SELinuxLabel = "system_u:system_r:container_t:s0:c1,c2" }, ""},
		{"selinux label longest", func(s *Spec) { s.SELinuxLabel = "u:r:t:" + strings.Repeat("s", MaxLabel-6) }, ""},
		{"selinux label too long", func(s *Spec) { s.SELinuxLabel = "u:r:t:" + strings.Repeat("s", MaxLabel-5) }, "selinux_label"},
		{"selinux label without level", func(s *Spec) { s.SELinuxLabel = "system_u:system_r:container_t" }, "selinux_label"},
		{"selinux label tab", func(s *Spec) { s.SELinuxLabel = "u:r:t:s0\t" }, "selinux_label"},
		{"selinux label NUL", func(s *Spec) { s.SELinuxLabel = "u:r:t:s0\x00" }, "selinux_label"},
		{"selinux mount label", func(s *Spec) { s.SELinuxMountLabel = "system_u:object_r:tmpfs_t:s0" }, ""},
		{"selinux mount label without level", func(s *Spec) { s.SELinuxMountLabel = "system_u:object_r:tmpfs_t" }, "selinux_mount_label"},
		{"selinux mount label too long", func(s *Spec) { s.SELinuxMountLabel = "u:r:t:" + strings.Repeat("s", MaxLabel-5) }, "selinux_mount_label"},
		{"landlock path too long", func(s *Spec) { s.Landlock = &Landlock{Read: []string{"/" + strings.Repeat("a", 4095)}} }, "landlock.read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok()
			tc.edit(&s)
			errs := FieldErrors(s.Validate())
			if tc.key == "" {
				if len(errs) > 0 {
					t.Fatalf("refused: %v", errs)
				}
				return
			}
			for _, e := range errs {
				if e.Key == tc.key {
					return
				}
			}
			t.Fatalf("want an error for %s, got %v", tc.key, errs)
		})
	}
}

func manyPaths(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "/p" + strconv.Itoa(i)
	}
	return out
}

func manyPorts(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%d:80", 10000+i))
	}
	return out
}

func defaultNS() *UserNS {
	return &UserNS{UIDMap: []IDMap{{0, 100000, 65536}}, GIDMap: []IDMap{{0, 100000, 65536}}}
}

func manyMaps(n int) *UserNS {
	ns := &UserNS{GIDMap: []IDMap{{0, 100000, 65536}}}
	for i := range n {
		ns.UIDMap = append(ns.UIDMap, IDMap{uint32(i), uint32(100000 + i), 1})
	}
	return ns
}

// TestQuote cuts long values in messages.
func TestQuote(t *testing.T) {
	long := strings.Repeat("é", 300)
	q := Quote(long)
	if len(q) > 100 || !strings.HasSuffix(q, "…(600 bytes)") {
		t.Fatalf("Quote(600 bytes) = %s", q)
	}
	if Quote("abc") != `"abc"` {
		t.Fatal(Quote("abc"))
	}
}

// TestParsePort checks the syntax of a published port and its message.
func TestParsePort(t *testing.T) {
	tests := []struct {
		in   string
		want Port
		err  string
	}{
		{"8080:80", Port{8080, 80, "tcp"}, ""},
		{"5353:53/udp", Port{5353, 53, "udp"}, ""},
		{"1:65535/tcp", Port{1, 65535, "tcp"}, ""},
		{"8080:80/", Port{}, `protocol ""`},
		{"8080:80/icmp", Port{}, `protocol "icmp"`},
		{"80", Port{}, "want \"HOST:CONTAINER\""},
		{":80", Port{}, `port ""`},
		{"8080:x", Port{}, `port "x"`},
		{"99999:80", Port{}, `port "99999"`},
	}
	for _, tc := range tests {
		p, err := ParsePort(tc.in)
		switch {
		case tc.err == "" && (err != nil || p != tc.want):
			t.Errorf("ParsePort(%q) = %v, %v; want %v", tc.in, p, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParsePort(%q) error %v, want one with %q", tc.in, err, tc.err)
		}
	}
}

// TestCheckMachine refuses a CPU limit above this machine's CPU count, at
// the count and just past it.
func TestCheckMachine(t *testing.T) {
	n := float64(runtime.NumCPU())
	for _, tc := range []struct {
		cpus *float64
		ok   bool
	}{{nil, true}, {ptr(0.01), true}, {ptr(n), true}, {ptr(n + 0.01), false}} {
		err := Limits{CPUs: tc.cpus}.CheckMachine()
		if (err == nil) != tc.ok {
			t.Errorf("cpus %v: error %v, want ok=%v", tc.cpus, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("this machine has %d CPUs", runtime.NumCPU())) {
			t.Errorf("cpus %v: error %q does not say how many CPUs the machine has", tc.cpus, err)
		}
	}
}

// TestDevicesBerthMakes: a device passed through at a path of the /dev
// berth makes in every container, or twice, is refused when the spec is
// checked, naming it, not at every start by mknod's EEXIST.
func TestDevicesBerthMakes(t *testing.T) {
	for _, tc := range []struct {
		devs []string
		want string
	}{
		{[]string{"/dev/null"}, `devices[0]: "/dev/null": every container's /dev has it already`},
		{[]string{"/dev//tty/"}, `devices[0]: "/dev//tty/": every container's /dev has it already`},
		{[]string{"/dev/pts/0"}, "every container's /dev has it already"},
		{[]string{"/dev/ptmx"}, "every container's /dev has it already"},
		{[]string{"/dev/shm/x"}, "every container's /dev has it already"},
		{[]string{"/dev/loop0", "/dev/sda", "/dev/loop0"}, `devices[2]: "/dev/loop0" is listed twice`},
		{[]string{"/dev/loop0", "/dev/./loop0"}, `devices[1]: "/dev/./loop0" is listed twice`},
	} {
		s := Spec{Name: "web", Args: []string{"/bin/true"}, Devices: tc.devs}
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.devs, err, tc.want)
		}
	}
}

// TestMaxNofile: the ceiling is the kernel's sysctl_nr_open_max on this
// word size.
func TestMaxNofile(t *testing.T) {
	want := map[int]uint64{64: 2147483584, 32: 1073741792}[strconv.IntSize]
	if MaxNofile != want {
		t.Errorf("MaxNofile %d, want %d", MaxNofile, want)
	}
}

// TestParseUserGID: a user without a GID runs with GID = UID, as the
// README says (docker's -u 1000 takes gid 0); UID:GID as given.
func TestParseUserGID(t *testing.T) {
	for _, tc := range []struct {
		in       string
		uid, gid uint32
	}{
		{"1000", 1000, 1000},
		{"0", 0, 0},
		{"1000:0", 1000, 0},
		{"7:8", 7, 8},
		{"4294967294", 4294967294, 4294967294},
	} {
		u, err := ParseUser(tc.in)
		if err != nil || u.UID != tc.uid || u.GID != tc.gid {
			t.Errorf("%q: %+v, %v; want %d:%d", tc.in, u, err, tc.uid, tc.gid)
		}
	}
}
