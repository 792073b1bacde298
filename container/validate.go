package container

import (
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
)

// FieldError is one problem with one field of a Spec. Key names the field
// as the config file does ("limits.cpu_weight", "mount.target"); Index is
// the element of a list-valued key (mounts, env, uid_map...) it is about,
// or -1. The config file maps the key to its line, berth run to its flag.
type FieldError struct {
	Key   string
	Index int
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("%s[%d]: %s", e.Key, e.Index, e.Msg)
	}
	return e.Key + ": " + e.Msg
}

// FieldErrors unpacks Validate's joined errors; an error of another kind
// becomes a FieldError without a key.
func FieldErrors(err error) []*FieldError {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*FieldError
		for _, e := range j.Unwrap() {
			out = append(out, FieldErrors(e)...)
		}
		return out
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return []*FieldError{fe}
	}
	return []*FieldError{{Index: -1, Msg: err.Error()}}
}

// Bounds of what a spec may ask for. A memory limit below MinMemory cannot
// start a process (and a bare number that small is a missing unit: "100"
// for "100M"); MaxCPUs and MaxIDMaps are the kernel's own ceilings.
const (
	MinMemory = 256 << 10
	// MinSwap is the least swap a limit may allow beyond its memory: a
	// page (4 KiB, the smallest any architecture has); the kernel rounds
	// less down to none.
	MinSwap   = 4 << 10
	MinCPUs   = 0.01
	MaxCPUs   = 8192 // NR_CPUS on the largest Linux configurations
	MaxWeight = 10000
	MaxIDMaps = 340 // lines a uid_map or gid_map may have (Linux 4.15+)
	MaxGroups = 65536
	// MaxPids is the kernel's PID_MAX_LIMIT: pids.max takes no more.
	MaxPids = 4 << 20
	// MaxPorts is how many ports one container may publish: each is a
	// rule in the appliance's nftables table.
	MaxPorts = 1024
)

// specCheck collects a Spec's problems.
type specCheck struct{ errs []error }

func (c *specCheck) add(key string, index int, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Key: key, Index: index, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks the whole spec and returns every problem found, joined,
// each a *FieldError. It is the one validation of a container: the config
// file and berth run's flags are turned into a Spec and checked here, and
// Start checks again, so no caller can skip it. Rootfs is not checked
// (Start does, once it is set).
func (s *Spec) Validate() error {
	c := &specCheck{}
	if err := CheckName(s.Name); err != nil {
		c.add("name", -1, "%v", err)
	}
	if s.Cgroup != "" {
		if err := CheckName(s.Cgroup); err != nil {
			c.add("cgroup", -1, "%v", err)
		}
	} else if _, ok := runPid(s.Name); ok {
		// berth run's cgroups: another berth run would take a
		// container named so for its own leftover and empty it.
		c.add("name", -1, "%s is kept for the cgroups of berth run (run-PID): choose another name", Quote(s.Name))
	}
	if len(s.Args) == 0 || s.Args[0] == "" {
		c.add("command", -1, "missing command: want an array such as [\"/bin/app\", \"--flag\"]")
	}
	for i, a := range s.Args {
		if strings.IndexByte(a, 0) >= 0 {
			c.add("command", i, "argument holds a NUL byte")
		}
	}
	for i, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.IndexByte(kv, 0) >= 0 {
			c.add("env", i, "invalid entry %s: want K=V", Quote(kv))
		}
	}
	if s.Cwd != "" {
		if err := CheckWorkdir(s.Cwd); err != nil {
			c.add("workdir", -1, "%v", err)
		}
	}
	if s.Hostname != "" {
		if err := CheckHostname(s.Hostname); err != nil {
			c.add("hostname", -1, "%v", err)
		}
	}
	switch s.Net {
	case "", "none", "host", "bridge":
	default:
		c.add("net", -1, "invalid value %s: want \"none\", \"host\" or \"bridge\"", Quote(s.Net))
	}
	c.ports(s)
	c.userNS(s)
	c.mounts(s.Mounts)
	c.devices(s.Devices)
	for i, name := range s.Caps {
		if _, ok := capByName()[name]; !ok {
			c.add("cap_add", i, "unknown capability %s", Quote(name))
		}
	}
	// Whatever set them (the config, a flag, the image's User or its
	// /etc/passwd): 2^32-1 is setresuid's and setresgid's "unchanged",
	// which would leave the workload with berth's own ids, root.
	if uint64(s.User.UID) > MaxID || uint64(s.User.GID) > MaxID {
		c.add("user", -1, "%d:%d: ids go from 0 to %d", s.User.UID, s.User.GID, MaxID)
	}
	for i, g := range s.User.Groups {
		if uint64(g) > MaxID {
			c.add("groups", i, "%d: ids go from 0 to %d", g, MaxID)
		}
	}
	if len(s.User.Groups) > MaxGroups {
		c.add("groups", -1, "%d groups: at most %d", len(s.User.Groups), MaxGroups)
	}
	c.rlimits(s.Rlimits)
	if a := s.OOMScoreAdj; a != nil && (*a < -1000 || *a > 1000) {
		c.add("oom_score_adj", -1, "%d: want -1000..1000", *a)
	}
	switch p := s.Seccomp; {
	case p == "", p == "default", p == "unconfined":
	case !path.IsAbs(p):
		c.add("seccomp", -1, "want \"default\", \"unconfined\" or the absolute path of a profile, got %s", Quote(p))
	}
	c.landlock(s.Landlock)
	c.lsmLabels(s)
	c.errs = append(c.errs, s.Limits.validate()...)
	return errors.Join(c.errs...)
}

// CheckHostname validates a hostname: 1-63 letters, digits, '-' and '.',
// starting with a letter or digit (RFC 1123, as the kernel's 64-byte
// buffer allows).
func CheckHostname(h string) error {
	ok := len(h) > 0 && len(h) <= 63 && isAlnum(h[0])
	for i := 0; ok && i < len(h); i++ {
		ok = isAlnum(h[i]) || h[i] == '-' || h[i] == '.'
	}
	if !ok {
		return fmt.Errorf("invalid hostname %s: want 1-63 of A-Z a-z 0-9 - . starting with a letter or digit", Quote(h))
	}
	return nil
}

func isAlnum(b byte) bool { return isLower(b) || b >= 'A' && b <= 'Z' || isDigit(b) }

func hasDotDot(p string) bool {
	return slices.Contains(strings.Split(p, "/"), "..")
}

// userNS checks the id maps: each covers a range that fits in 32 bits, the
// ranges overlap neither inside nor outside, the container's root and the
// workload's user and groups are mapped.
func (c *specCheck) userNS(s *Spec) {
	ns := s.UserNS
	if ns == nil {
		return
	}
	c.idMaps("uid_map", ns.UIDMap, []uint32{0, s.User.UID})
	c.idMaps("gid_map", ns.GIDMap, append([]uint32{0, s.User.GID}, s.User.Groups...))
}

// CheckWorkdir checks a working directory a spec or an exec names:
// absolute, without "..".
func CheckWorkdir(cwd string) error {
	if !path.IsAbs(cwd) || hasDotDot(cwd) || strings.IndexByte(cwd, 0) >= 0 {
		return fmt.Errorf("want an absolute path without \"..\", got %s", Quote(cwd))
	}
	return nil
}

// protectedTargets are the container paths berth mounts itself: a mount
// on them, or under /proc and /sys, would undo the container's isolation.
var protectedTargets = []string{"/proc", "/sys", "/dev"}

// mounts checks every mount and that no two share a target.
func (c *specCheck) mounts(ms []Mount) {
	seen := map[string]bool{}
	for i, m := range ms {
		if err := CheckMount(m); err != nil {
			c.add(mountKey(m, err), i, "%v", err)
			continue
		}
		t := path.Clean(m.Target)
		if seen[t] {
			c.add("mount.target", i, "%s is the target of an earlier mount", Quote(t))
		}
		seen[t] = true
	}
}

// mountKey is the key a mount's error is about.
func mountKey(m Mount, err error) string {
	switch {
	case strings.HasPrefix(err.Error(), "mount source"):
		return "mount.source"
	case strings.HasPrefix(err.Error(), "mount type"):
		return "mount.type"
	case strings.HasPrefix(err.Error(), "mount size"):
		return "mount.size"
	case strings.HasPrefix(err.Error(), "mount volume"):
		return "mount.volume"
	}
	return "mount.target"
}

// CheckMount validates one mount: an absolute target without "..", not
// the root nor one of berth's own mounts (/proc, /sys and what lies under
// them, /dev itself); a bind's absolute source or its volume's name; a
// tmpfs's size.
func CheckMount(m Mount) error {
	t := m.Target
	switch {
	case !path.IsAbs(t) || strings.IndexByte(t, 0) >= 0:
		return fmt.Errorf("mount target %s: want an absolute path inside the container", Quote(t))
	case hasDotDot(t):
		return fmt.Errorf("mount target %s: \"..\" is not allowed", Quote(t))
	case path.Clean(t) == "/":
		return fmt.Errorf("mount target %s: cannot mount over the container's root", Quote(t))
	}
	clean := path.Clean(t)
	for _, p := range protectedTargets {
		if clean == p || (p != "/dev" && strings.HasPrefix(clean, p+"/")) {
			return fmt.Errorf("mount target %s: berth mounts %s itself", Quote(t), p)
		}
	}
	switch m.Type {
	case "", "bind":
		if err := checkBindSource(m); err != nil {
			return err
		}
		if m.Size != 0 {
			return fmt.Errorf("mount size: only a tmpfs has a size")
		}
	case "tmpfs":
		if m.Source != "" {
			return fmt.Errorf("mount source %s: a tmpfs has no source", Quote(m.Source))
		}
		if m.Volume != "" {
			return fmt.Errorf("mount volume %s: a tmpfs has no volume", Quote(m.Volume))
		}
		if m.Size < 0 {
			return fmt.Errorf("mount size %d: must not be negative", m.Size)
		}
	default:
		return fmt.Errorf("mount type %s: want \"bind\" or \"tmpfs\"", Quote(m.Type))
	}
	return nil
}

// checkBindSource checks a bind's source: an absolute host path, or a
// volume's name, not both.
func checkBindSource(m Mount) error {
	if m.Volume == "" {
		if !path.IsAbs(m.Source) || strings.IndexByte(m.Source, 0) >= 0 {
			return fmt.Errorf("mount source %s: want an absolute host path (or a volume)", Quote(m.Source))
		}
		return nil
	}
	switch {
	case m.Source != "":
		return fmt.Errorf("mount volume %s: give a source or a volume, not both", Quote(m.Volume))
	case m.FollowSymlink:
		return fmt.Errorf("mount volume %s: follow_symlink is for a host source; a volume is a directory berth made", Quote(m.Volume))
	}
	if err := CheckName(m.Volume); err != nil {
		return fmt.Errorf("mount volume %s: want 1-63 of a-z 0-9 _ . - starting with a letter or digit", Quote(m.Volume))
	}
	return nil
}

// rlimits checks for a resource given twice.
func (c *specCheck) rlimits(rs []Rlimit) {
	seen := map[string]bool{}
	for _, r := range rs {
		key := "rlimits." + r.Name
		if _, ok := rlimitByName(r.Name); !ok {
			c.add(key, -1, "unknown resource: want one of %s", strings.Join(RlimitNames(), ", "))
		} else if r.Soft > r.Hard {
			c.add(key, -1, "soft limit %d above hard limit %d", r.Soft, r.Hard)
		} else if r.Name == "nofile" && r.Hard > MaxNofile {
			c.add(key, -1, "%s: at most %d open files (the kernel's largest fs.nr_open; its default is 1048576)", formatRlimit(r.Hard), MaxNofile)
		} else if seen[r.Name] {
			c.add(key, -1, "given twice")
		}
		seen[r.Name] = true
	}
}

// validate checks the limits' ranges and syntax; see Limits for what zero
// and nil mean.
func (l Limits) validate() []error {
	c := &specCheck{}
	for _, m := range []struct {
		key string
		v   int64
	}{{"limits.memory", l.Memory}, {"limits.memory_high", l.MemoryHigh}} {
		switch {
		case m.v < 0:
			c.add(m.key, -1, "must not be negative")
		case m.v > 0 && m.v < MinMemory:
			c.add(m.key, -1, "%d bytes is below the %s a process needs (a unit missing? K, M, G)", m.v, FormatSize(MinMemory))
		}
	}
	if l.Memory > 0 && l.MemoryHigh > l.Memory {
		c.add("limits.memory_high", -1, "%s is above memory %s", FormatSize(l.MemoryHigh), FormatSize(l.Memory))
	}
	switch {
	case l.MemorySwap < -1:
		c.add("limits.memory_swap", -1, "want a size or \"unlimited\"")
	case l.MemorySwap != 0 && l.Memory == 0:
		c.add("limits.memory_swap", -1, "swap is allowed on top of a memory limit: set memory too")
	case l.MemorySwap > 0 && l.MemorySwap < MinSwap:
		c.add("limits.memory_swap", -1, "%d bytes is under a page, which the kernel makes no swap at all (a unit missing? K, M, G)", l.MemorySwap)
	}
	if p := l.CPUs; p != nil && (math.IsNaN(*p) || *p < MinCPUs || *p > MaxCPUs) {
		c.add("limits.cpus", -1, "%v: want %v to %d CPUs", *p, MinCPUs, MaxCPUs)
	}
	for _, w := range []struct {
		key string
		v   *uint64
	}{{"limits.cpu_weight", l.CPUWeight}, {"limits.io_weight", l.IOWeight}} {
		if w.v != nil && (*w.v < 1 || *w.v > MaxWeight) {
			c.add(w.key, -1, "%d: want 1-%d", *w.v, MaxWeight)
		}
	}
	if l.CPUSet != "" {
		if _, err := ParseCPUSet(l.CPUSet); err != nil {
			c.add("limits.cpuset", -1, "%v", err)
		}
	}
	if l.Pids < 0 || l.Pids > MaxPids {
		c.add("limits.pids", -1, "%d: want 0 (no limit) to %d", l.Pids, MaxPids)
	}
	for i, line := range l.IOMax {
		if !validIOMax(line) {
			c.add("limits.io_max", i, "%s: want \"MAJ:MIN rbps=N wbps=N riops=N wiops=N\"", Quote(line))
		}
	}
	return c.errs
}

// ParseCPUSet parses a CPU list such as "0-1,3" into the CPUs it names,
// checking each range is in order and below MaxCPUs.
func ParseCPUSet(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		switch {
		case err1 != nil || err2 != nil || a < 0 || lo == "" || (isRange && hi == ""):
			return nil, fmt.Errorf("%s: want a CPU list such as \"0-1,3\"", Quote(s))
		case b < a:
			return nil, fmt.Errorf("%s: range %s is backwards", Quote(s), part)
		case b >= MaxCPUs:
			return nil, fmt.Errorf("%s: CPU %d is past the %d a machine may have", Quote(s), b, MaxCPUs)
		}
		for n := a; n <= b; n++ {
			cpus = append(cpus, n)
		}
	}
	return cpus, nil
}

// Quote quotes a value for an error message, cut to 64 bytes: a hostile or
// mistaken value (a 512 KiB hostname) must not flood the console.
func Quote(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("…(%d bytes)", len(s))
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// validIOMax reports whether line is a cgroup io.max line,
// "MAJ:MIN KEY=VALUE[ KEY=VALUE...]": MAJ and MIN decimal, each KEY one
// of rbps, wbps, riops, wiops, each VALUE decimal or "max", single spaces.
func validIOMax(line string) bool {
	dev, settings, ok := strings.Cut(line, " ")
	if !ok {
		return false
	}
	major, minor, ok := strings.Cut(dev, ":")
	if !ok || !decimal(major) || !decimal(minor) {
		return false
	}
	for _, kv := range strings.Split(settings, " ") {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok, k != "rbps" && k != "wbps" && k != "riops" && k != "wiops", v != "max" && !decimal(v):
			return false
		}
	}
	return true
}

// decimal reports whether s is one or more ASCII digits.
func decimal(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
