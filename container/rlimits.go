package container

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Rlimit is one resource limit of the workload, as setrlimit(2) sets it.
type Rlimit struct {
	// Name is the resource in lower case without RLIMIT_: "nofile".
	Name       string `json:"name"`
	Soft, Hard uint64
}

// Unlimited is RLIM_INFINITY.
const Unlimited = ^uint64(0)

// rlimits are the resources by name, sorted: data, where a map is init
// code run in every berth process.
var rlimits = [...]struct {
	name string
	res  int
}{
	{"as", unix.RLIMIT_AS}, {"core", unix.RLIMIT_CORE}, {"cpu", unix.RLIMIT_CPU}, {"data", unix.RLIMIT_DATA},
	{"fsize", unix.RLIMIT_FSIZE}, {"locks", unix.RLIMIT_LOCKS}, {"memlock", unix.RLIMIT_MEMLOCK},
	{"msgqueue", unix.RLIMIT_MSGQUEUE}, {"nice", unix.RLIMIT_NICE}, {"nofile", unix.RLIMIT_NOFILE},
	{"nproc", unix.RLIMIT_NPROC}, {"rss", unix.RLIMIT_RSS}, {"rtprio", unix.RLIMIT_RTPRIO},
	{"rttime", unix.RLIMIT_RTTIME}, {"sigpending", unix.RLIMIT_SIGPENDING}, {"stack", unix.RLIMIT_STACK},
}

// rlimitByName returns the resource named name.
func rlimitByName(name string) (int, bool) {
	for _, r := range rlimits {
		if r.name == name {
			return r.res, true
		}
	}
	return 0, false
}

// RlimitNames lists the resource names ParseRlimit accepts.
func RlimitNames() []string {
	var names []string
	for _, r := range rlimits {
		names = append(names, r.name)
	}
	return names
}

// ParseRlimit parses a limit for resource name: "N" (soft and hard),
// "SOFT:HARD", with "unlimited" allowed for either.
func ParseRlimit(name, value string) (Rlimit, error) {
	if _, ok := rlimitByName(name); !ok {
		return Rlimit{}, fmt.Errorf("unknown rlimit %q: want one of %s", name, strings.Join(RlimitNames(), ", "))
	}
	num := func(s string) (uint64, error) {
		if s == "unlimited" || s == "infinity" {
			return Unlimited, nil
		}
		return strconv.ParseUint(s, 10, 64)
	}
	softS, hardS, pair := strings.Cut(value, ":")
	if !pair {
		hardS = softS
	}
	soft, err1 := num(softS)
	hard, err2 := num(hardS)
	if err1 != nil || err2 != nil {
		return Rlimit{}, fmt.Errorf("invalid rlimit %s=%q: want N, SOFT:HARD or unlimited", name, value)
	}
	if soft > hard {
		return Rlimit{}, fmt.Errorf("invalid rlimit %s=%q: soft limit above hard limit", name, value)
	}
	return Rlimit{Name: name, Soft: soft, Hard: hard}, nil
}

// MaxNofile is the most open files the kernel lets a process have, the
// largest value fs.nr_open takes (sysctl_nr_open_max: INT_MAX, or a
// quarter of the address space on 32-bit, rounded down to the bits of a
// long); fs.nr_open itself, 1048576 by default, may be lower.
const MaxNofile = min(1<<31-1, ^uint64(0)>>(64-strconv.IntSize)/(strconv.IntSize/8)) &^ (strconv.IntSize - 1)

// formatRlimit writes a limit as a config gives it.
func formatRlimit(v uint64) string {
	if v == Unlimited {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// formatRlimits writes limits as a config gives them: nofile=SOFT:HARD.
func formatRlimits(rs []Rlimit) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.Name + "=" + formatRlimit(r.Soft) + ":" + formatRlimit(r.Hard)
	}
	return strings.Join(parts, " ")
}

// setRlimits applies rs to the calling process. RLIMIT_NOFILE goes through
// the syscall package, which otherwise restores Go's saved original limit
// on exec.
func setRlimits(rs []Rlimit) error {
	for _, r := range rs {
		res, ok := rlimitByName(r.Name)
		if !ok {
			return fmt.Errorf("set rlimit: unknown resource %q", r.Name)
		}
		var err error
		if res == unix.RLIMIT_NOFILE {
			err = syscall.Setrlimit(res, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard})
		} else {
			err = unix.Setrlimit(res, &unix.Rlimit{Cur: r.Soft, Max: r.Hard})
		}
		if err != nil {
			return fmt.Errorf("set rlimit %s to %d:%d: %w", r.Name, r.Soft, r.Hard, err)
		}
	}
	return nil
}

// rlimitHint explains an EPERM from setting rs: a nofile above the
// machine's fs.nr_open.
func rlimitHint(rs []Rlimit, errno syscall.Errno) string {
	if errno != unix.EPERM {
		return ""
	}
	data, err := os.ReadFile("/proc/sys/fs/nr_open")
	if err != nil {
		return ""
	}
	max, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return ""
	}
	for _, r := range rs {
		if r.Name == "nofile" && r.Hard > max {
			return fmt.Sprintf(" (nofile above this machine's fs.nr_open, %d)", max)
		}
	}
	return ""
}
