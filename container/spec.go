// Package container runs a command isolated in its own namespaces, under a
// pivot_root'ed root filesystem and cgroup limits, without cgo and without
// an external runtime.
//
// Start creates the cgroup and the namespaces, builds the root filesystem
// inside them and finally execs the workload, so the workload's own code
// only ever runs fully confined. Without a user namespace it starts no
// second berth (a direct start, direct.go): the container's first process
// makes only raw system calls while a thread of berth's builds the tree.
// With one it re-executes the berth binary as the container's init (see
// Init), which builds the tree from inside.
package container

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Spec describes one container. The zero value of every optional field is
// the safe default: all namespaces, no extra mounts or devices, containerd's
// default capabilities, no_new_privs, Docker's default seccomp profile.
type Spec struct {
	// Name identifies the container in logs and names its cgroup.
	Name string `json:"name"`
	// Cgroup, when set, names its cgroup instead of Name: berth run's
	// cgroups are its own ("run-PID"), so that a run named like a
	// container of berth boot never takes that container's cgroup.
	Cgroup string `json:"cgroup,omitempty"`
	// Rootfs is the directory that becomes the container's /.
	Rootfs string `json:"rootfs"`
	// Args is the command and its arguments; Args[0] is looked up in the
	// container's PATH when it has no slash.
	Args []string `json:"args"`
	// Env is the workload's environment as K=V pairs. PATH defaults to
	// DefaultPath when it is not set.
	Env []string `json:"env,omitempty"`
	// Cwd is the working directory inside the container (default /).
	Cwd string `json:"cwd,omitempty"`
	// Hostname is the container's UTS name (default: Name).
	Hostname string `json:"hostname,omitempty"`
	// Limits are the cgroup limits applied before the workload runs.
	Limits Limits `json:"limits"`

	// Net is "none" (default: a network namespace of its own with only
	// loopback, up), "host", or "bridge": a network namespace of its own
	// with eth0 on the appliance's bridge (see Options.Network).
	Net string `json:"net,omitempty"`
	// Ports are published ports of a bridge container,
	// "HOST:CONTAINER[/tcp|/udp]" (see ParsePort).
	Ports []string `json:"ports,omitempty"`
	// UserNS, when set, runs the container in a new user namespace.
	UserNS *UserNS `json:"user_ns,omitempty"`
	// ReadonlyRoot mounts the root filesystem read-only.
	ReadonlyRoot bool `json:"readonly_root,omitempty"`
	// Mounts are extra bind and tmpfs mounts.
	Mounts []Mount `json:"mounts,omitempty"`
	// Devices are host device nodes passed through, by host path.
	Devices []string `json:"devices,omitempty"`

	// Caps are the capabilities (names without CAP_) the workload keeps;
	// nil means DefaultCaps, an empty list none. See ResolveCaps.
	Caps []string `json:"caps"`
	// AllowNewPrivileges turns no_new_privs off (it is on by default).
	AllowNewPrivileges bool `json:"allow_new_privileges,omitempty"`
	// User is the workload's uid, gid and supplementary groups.
	User User `json:"user"`
	// Rlimits are resource limits (setrlimit) of the workload.
	Rlimits []Rlimit `json:"rlimits,omitempty"`
	// OOMScoreAdj, when set, is written to /proc/self/oom_score_adj.
	OOMScoreAdj *int `json:"oom_score_adj,omitempty"`
	// Seccomp is "" or "default" (Docker's default profile),
	// "unconfined", or the path of a profile in Docker/OCI JSON.
	Seccomp string `json:"seccomp,omitempty"`
	// TTY gives the workload a new pseudo-terminal as its stdio; Start
	// returns the master as Container.PTY.
	TTY bool `json:"tty,omitempty"`
	// Landlock, when set, confines the workload's filesystem access to
	// the paths it lists (landlock.go).
	Landlock *Landlock `json:"landlock,omitempty"`
	// AppArmor is the AppArmor profile the workload is exec'd under; it
	// must be loaded in the kernel.
	AppArmor string `json:"apparmor,omitempty"`
	// SELinuxLabel is the SELinux context, user:role:type:level, the
	// workload is exec'd in, and its tmpfs mounts are labelled with
	// unless SELinuxMountLabel says otherwise.
	SELinuxLabel string `json:"selinux_label,omitempty"`
	// SELinuxMountLabel is the SELinux context of the files of the
	// container's tmpfs mounts (context=), when it must differ from
	// SELinuxLabel: an enforcing policy labels files with file types.
	SELinuxMountLabel string `json:"selinux_mount_label,omitempty"`
	// Init runs a tiny init as the container's first process, which
	// forwards signals to the workload, reaps orphans and ends with the
	// workload's status (tinyinit.go).
	Init bool `json:"init,omitempty"`
}

// Limits are resource limits enforced by the container's cgroup. A zero or
// nil field is no limit (the kernel's default); Validate gives the ranges.
type Limits struct {
	// Memory is the hard memory limit in bytes.
	Memory int64 `json:"memory,omitempty"`
	// MemoryHigh is the memory.high throttling threshold (v2; on v1 the
	// soft limit).
	MemoryHigh int64 `json:"memory_high,omitempty"`
	// MemorySwap is how much swap the container may use on top of Memory;
	// 0 none, -1 unlimited.
	MemorySwap int64 `json:"memory_swap,omitempty"`
	// CPUs caps CPU time, in CPUs (0.5 = half of one CPU), MinCPUs to
	// the machine's count.
	CPUs *float64 `json:"cpus,omitempty"`
	// CPUWeight is the relative CPU share, 1-10000 (v2 cpu.weight; v1
	// cpu.shares is derived from it).
	CPUWeight *uint64 `json:"cpu_weight,omitempty"`
	// CPUSet lists the CPUs the container may run on, e.g. "0-1".
	CPUSet string `json:"cpuset,omitempty"`
	// Pids is the maximum number of tasks (processes and threads); 0 is
	// no limit.
	Pids int64 `json:"pids,omitempty"`
	// IOWeight is the relative block I/O weight, 1-10000 (v2 io.weight;
	// v1 blkio.weight is derived from it).
	IOWeight *uint64 `json:"io_weight,omitempty"`
	// IOMax are per-device I/O limits in io.max syntax:
	// "MAJ:MIN rbps=N wbps=N riops=N wiops=N".
	IOMax []string `json:"io_max,omitempty"`
}

// UserNS maps the container's users and groups to the host's.
type UserNS struct {
	UIDMap []IDMap `json:"uid_map"`
	GIDMap []IDMap `json:"gid_map"`
}

// IDMap maps Size ids starting at Container inside to Host outside.
type IDMap struct {
	Container uint32 `json:"container"`
	Host      uint32 `json:"host"`
	Size      uint32 `json:"size"`
}

func (m IDMap) String() string { return fmt.Sprintf("%d:%d:%d", m.Container, m.Host, m.Size) }

// DefaultIDMap maps a user namespace's ids 0-65535 to host ids from
// 100000, when a user namespace is asked for without maps.
const DefaultIDMap = "0:100000:65536"

// ParseIDMap parses "CONTAINER:HOST:SIZE", e.g. "0:100000:65536".
func ParseIDMap(s string) (IDMap, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return IDMap{}, fmt.Errorf("invalid id map %q: want CONTAINER:HOST:SIZE", s)
	}
	var v [3]uint64
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return IDMap{}, fmt.Errorf("invalid id map %q: %v", s, err)
		}
		v[i] = n
	}
	return IDMap{uint32(v[0]), uint32(v[1]), uint32(v[2])}, nil
}

// User is who the workload runs as.
type User struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

// ParseUser parses "UID" or "UID:GID" (numeric ids).
func ParseUser(s string) (User, error) {
	uidS, gidS, hasGID := strings.Cut(s, ":")
	uid, err := strconv.ParseUint(uidS, 10, 32)
	if err != nil {
		return User{}, fmt.Errorf("invalid user %q: want UID or UID:GID (numbers)", s)
	}
	gid := uid
	if hasGID {
		if gid, err = strconv.ParseUint(gidS, 10, 32); err != nil {
			return User{}, fmt.Errorf("invalid user %q: want UID or UID:GID (numbers)", s)
		}
	}
	// (uid_t)-1 tells setresuid and setresgid to leave an id as it is:
	// the workload would keep berth's own, root.
	if uid == MaxID+1 || gid == MaxID+1 {
		return User{}, fmt.Errorf("invalid user %q: ids go from 0 to %d (%d means \"unchanged\" to the kernel)", s, MaxID, MaxID+1)
	}
	return User{UID: uint32(uid), GID: uint32(gid)}, nil
}

// MaxID is the largest user or group id: 2^32-1 is the kernel's "no id".
const MaxID uint64 = 1<<32 - 2

// runCgroup is the prefix of berth run's cgroups, "run-PID".
const runCgroup = "run-"

// RunCgroup names the cgroup of the berth run whose process is pid.
func RunCgroup(pid int) string { return runCgroup + strconv.Itoa(pid) }

// runPid returns the pid of a cgroup name RunCgroup made, or false.
func runPid(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, runCgroup)
	if !ok || !decimal(s) || len(s) > 10 {
		return 0, false
	}
	pid, err := strconv.Atoi(s)
	return pid, err == nil
}

// DefaultPath is the workload's PATH when its environment sets none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// CheckName reports whether name can name a container: it names a cgroup
// directory and appears in logs, so it is restricted to 1-63 characters of
// lower-case letters, digits, '_', '.' and '-', starting with a letter or
// digit.
func CheckName(name string) error {
	if name == "" {
		return errors.New("missing name: want 1-63 of a-z 0-9 _ . - starting with a letter or digit")
	}
	ok := len(name) <= 63 && (isLower(name[0]) || isDigit(name[0]))
	for i := 1; ok && i < len(name); i++ {
		c := name[i]
		ok = isLower(c) || isDigit(c) || c == '_' || c == '.' || c == '-'
	}
	if !ok {
		return fmt.Errorf("invalid container name %s: want 1-63 of a-z 0-9 _ . - starting with a letter or digit", Quote(name))
	}
	return nil
}

func isLower(b byte) bool { return b >= 'a' && b <= 'z' }
func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// ParseSize parses a byte size such as "512K", "64M", "1.5G", "64MiB" or a
// plain number of bytes. Units are powers of 1024, as in docker and the
// kernel's own memory limits.
func ParseSize(s string) (int64, error) {
	// A unit is K, M, G or T in either case, optionally followed by i,
	// and the whole optionally by B or b (docker's forms: 32m, 32MB,
	// 32Mi, 32MiB); all are powers of 1024. An i without a unit is not.
	t := strings.TrimSpace(s)
	if n := len(t); n > 0 && (t[n-1] == 'B' || t[n-1] == 'b') {
		t = t[:n-1]
	}
	if n := len(t); n >= 2 && t[n-1] == 'i' && strings.ContainsRune("kKmMgGtT", rune(t[n-2])) {
		t = t[:n-1]
	}
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !plainNumber(t) {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional K, M, G or T suffix", s)
	}
	b := v * float64(mult)
	if b > float64(1<<62) {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	// 0 means "no limit" to the keys that take a size: a size that is
	// not 0 must not become it.
	if b > 0 && b < 1 {
		return 0, fmt.Errorf("invalid size %q: less than one byte", s)
	}
	return int64(b), nil
}

// ParseTmpfsSize parses a tmpfs's size, which must be above 0. A 0
// would mean neither what was written nor a refusal: a tmpfs mounted
// without a size gets the kernel's default, half of RAM (and the
// kernel takes size=0 for no cap at all).
func ParseTmpfsSize(s string) (int64, error) {
	n, err := ParseSize(s)
	if err == nil && n == 0 {
		return 0, fmt.Errorf("invalid size %q: a tmpfs size must be above 0, or leave it out for the default (half of RAM)", s)
	}
	return n, err
}

// plainNumber reports whether t is digits with at most one '.' among them:
// not NaN, Inf, a sign, an exponent or a hexadecimal float, all of which
// strconv.ParseFloat takes.
func plainNumber(t string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(t); i++ {
		switch {
		case isDigit(t[i]):
			digits++
		case t[i] == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

// FormatSize renders a byte count for humans, e.g. "64 MiB".
func FormatSize(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit && exp < 3; n /= unit {
		div *= unit
		exp++
	}
	v := float64(b) / float64(div)
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGT"[exp]) + "iB"
}

// CgroupName is the name of the container's cgroup: Cgroup, else Name.
func (s *Spec) CgroupName() string {
	if s.Cgroup != "" {
		return s.Cgroup
	}
	return s.Name
}
