package boot

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"berth/container"
)

// ContainerConfig is one [[container]] table. Every key but name and
// image is optional; its absence means the image's default (command,
// entrypoint, env, workdir, user, stop_signal: see ApplyImage) or the
// runtime's safe one.
type ContainerConfig struct {
	Name string `toml:"name"`
	// Image is the path of an image file; a relative path is relative to
	// the config file's directory.
	Image string `toml:"image"`
	imageKeys
	// Command replaces the image's Cmd; Entrypoint, when given (even
	// empty), replaces the image's Entrypoint and drops its Cmd. See
	// ApplyImage.
	Command    []string `toml:"command"`
	Entrypoint []string `toml:"entrypoint"`
	Env        []string `toml:"env"`
	Hostname   string   `toml:"hostname"`
	Workdir    string   `toml:"workdir"`
	// User is "UID" or "UID:GID"; Groups are supplementary group ids.
	User   string    `toml:"user"`
	Groups []groupID `toml:"groups"`

	Net string `toml:"net"`
	// Ports are a bridge container's published ports,
	// "HOST:CONTAINER[/tcp|/udp]".
	Ports []string `toml:"ports"`
	// UserNS turns a user namespace on (or, false, off); uid_map and
	// gid_map imply it. Maps are "CONTAINER:HOST:SIZE" strings, one or an
	// array of them.
	UserNS       *bool         `toml:"user_ns"`
	UIDMap       idMapList     `toml:"uid_map"`
	GIDMap       idMapList     `toml:"gid_map"`
	ReadonlyRoot bool          `toml:"readonly_root"`
	Mount        []MountConfig `toml:"mount"`
	Devices      []string      `toml:"devices"`

	CapAdd  []string `toml:"cap_add"`
	CapDrop []string `toml:"cap_drop"`
	// NoNewPrivileges defaults to true.
	NoNewPrivileges *bool          `toml:"no_new_privileges"`
	Seccomp         string         `toml:"seccomp"`
	OOMScoreAdj     *int           `toml:"oom_score_adj"`
	Rlimits         map[string]any `toml:"rlimits"`

	Limits LimitsConfig `toml:"limits"`
	// Landlock, [container.landlock], confines the workload to the
	// paths it lists.
	Landlock *LandlockConfig `toml:"landlock"`
	// AppArmor is the AppArmor profile the workload runs under.
	AppArmor string `toml:"apparmor"`
	// SELinuxLabel is the SELinux context the workload runs in, and its
	// tmpfs mounts' files carry.
	SELinuxLabel string `toml:"selinux_label"`
	// SELinuxMountLabel is the context of its tmpfs mounts' files, when
	// not SELinuxLabel.
	SELinuxMountLabel string `toml:"selinux_mount_label"`

	// Supervision: restart is "never" (default: the files of the first
	// releases keep their meaning), "on-failure" or "always".
	Restart       string   `toml:"restart"`
	MaxRestarts   int      `toml:"max_restarts"`
	RestartWindow string   `toml:"restart_window"`
	RestartDelay  string   `toml:"restart_delay"`
	After         []string `toml:"after"`
	Oneshot       bool     `toml:"oneshot"`
	StopSignal    string   `toml:"stop_signal"`
	StopTimeout   string   `toml:"stop_timeout"`
	// Health, [container.health], checks the running container.
	Health *HealthConfig `toml:"health"`

	// Init runs berth's tiny init as the container's first process: it
	// forwards signals to the command and reaps orphans.
	Init bool `toml:"init"`

	// NeedsNetwork holds the container's start until an uplink of
	// [[network.interface]] has an address and a default route.
	NeedsNetwork bool `toml:"needs_network"`

	// Logs: the in-memory ring, an optional rotated file, the console.
	LogSize     string `toml:"log_size"`
	LogFile     string `toml:"log_file"`
	LogFileSize string `toml:"log_file_size"`
	LogFiles    *int   `toml:"log_files"`
	LogConsole  *bool  `toml:"log_console"`
}

// MountConfig is one [[container.mount]] table.
type MountConfig struct {
	// Type is "bind" (default) or "tmpfs".
	Type   string `toml:"type"`
	Source string `toml:"source"`
	// Volume names a directory of the data partition, MOUNT/volumes/NAME,
	// made on first use, instead of a Source.
	Volume   string `toml:"volume"`
	Target   string `toml:"target"`
	Readonly bool   `toml:"readonly"`
	// FollowSymlink follows symlinks on the source's path; without it a
	// source with a symlink anywhere on its path is refused.
	FollowSymlink bool `toml:"follow_symlink"`
	// Size caps a tmpfs, e.g. "16M".
	Size string `toml:"size"`
}

// LandlockConfig is a container's [container.landlock] table: the trees
// (paths inside the container) the workload may read and execute, and
// those it may also change; best_effort runs it without Landlock on a
// kernel that has none.
type LandlockConfig struct {
	Read       []string `toml:"read"`
	Write      []string `toml:"write"`
	BestEffort bool     `toml:"best_effort"`
}

// LimitsConfig is a container's [container.limits] table.
type LimitsConfig struct {
	// Memory is a size such as "64M"; empty means no limit.
	Memory     string `toml:"memory"`
	MemoryHigh string `toml:"memory_high"`
	// MemorySwap is swap allowed beyond Memory: a size, or "unlimited".
	MemorySwap string   `toml:"memory_swap"`
	CPUs       *float64 `toml:"cpus"`
	CPUWeight  *uint64  `toml:"cpu_weight"`
	CPUSet     string   `toml:"cpuset"`
	Pids       int64    `toml:"pids"`
	IOWeight   *uint64  `toml:"io_weight"`
	IOMax      []string `toml:"io_max"`
}

// groupID is a group id of groups: its own type so that the type check
// (configtypes.go) says the ids' range, 0 to container.MaxID, as
// Validate does, not uint32's, of a value a uint32 cannot hold.
type groupID uint32

// idMapList is uid_map or gid_map: one "CONTAINER:HOST:SIZE" string, or
// an array of them.
type idMapList []string

// UnmarshalTOML accepts a string or an array of strings.
func (l *idMapList) UnmarshalTOML(v any) error {
	const want = `want "CONTAINER:HOST:SIZE" or an array of them`
	switch t := v.(type) {
	case string:
		*l = idMapList{t}
		return nil
	case []any:
		out := make(idMapList, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("%s, got an array holding %s", want, tomlType(e))
			}
			out = append(out, s)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("%s, got %s", want, tomlType(v))
}

// tomlType names the TOML type of a decoded value, with its article.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return "a date or time"
}

// fieldError is a problem with one key of a [[container]] table, as an
// indexed path relative to the table ("limits.memory", "mount#1.target").
type fieldError struct{ key, msg string }

// toSpec converts the table into a container spec for rootfs and checks
// it (container.Spec.Validate), collecting every problem instead of
// stopping at the first: it is both the validation of `berth check` and
// the conversion at boot.
func (c ContainerConfig) toSpec(rootfs string) (container.Spec, []fieldError) {
	var errs []fieldError
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fieldError{key, fmt.Sprintf(format, args...)})
	}
	s := container.Spec{
		Name: c.Name, Rootfs: rootfs, Args: c.Command, Env: c.Env, Hostname: c.Hostname, Cwd: c.Workdir,
		Net: c.Net, Ports: c.Ports, ReadonlyRoot: c.ReadonlyRoot, Devices: c.Devices, Seccomp: c.Seccomp, OOMScoreAdj: c.OOMScoreAdj,
		AllowNewPrivileges: c.NoNewPrivileges != nil && !*c.NoNewPrivileges, AppArmor: c.AppArmor, SELinuxLabel: c.SELinuxLabel,
		SELinuxMountLabel: c.SELinuxMountLabel, Init: c.Init,
	}
	if c.User != "" {
		u, err := container.ParseUser(c.User)
		if err != nil {
			bad("user", "%v", err)
		}
		s.User = u
	}
	for _, g := range c.Groups {
		s.User.Groups = append(s.User.Groups, uint32(g))
	}
	s.UserNS = c.userNS(bad)
	for i, m := range c.Mount {
		cm := container.Mount{Type: m.Type, Source: m.Source, Volume: m.Volume, Target: m.Target, Readonly: m.Readonly, FollowSymlink: m.FollowSymlink}
		if m.Size != "" {
			cm.Size = mountSize(m, fmt.Sprintf("mount#%d.size", i), bad)
		}
		s.Mounts = append(s.Mounts, cm)
	}
	caps, err := container.ResolveCaps(c.CapAdd, c.CapDrop)
	if err != nil {
		key := "cap_add"
		if strings.HasPrefix(err.Error(), "cap_drop") {
			key = "cap_drop"
		}
		bad(key, "%v", err)
	}
	s.Caps = caps
	if c.Health != nil && err == nil && s.TracesExecs(caps) {
		bad("health", "a health check runs as an exec, and %v", container.ErrTracesExecs)
	}
	s.Rlimits = c.rlimits(bad)
	s.Limits = c.Limits.toLimits(bad)
	if l := c.Landlock; l != nil {
		s.Landlock = &container.Landlock{Read: l.Read, Write: l.Write, BestEffort: l.BestEffort}
	}
	// One error per key: a value that could not be parsed is not judged
	// again by Validate (an unparsable uid_map is not also "empty").
	unparsed := map[string]bool{}
	for _, e := range errs {
		unparsed[e.key] = true
	}
	for _, fe := range container.FieldErrors(s.Validate()) {
		key := fe.Key
		if rest, ok := strings.CutPrefix(key, "mount."); ok && fe.Index >= 0 {
			key = fmt.Sprintf("mount#%d.%s", fe.Index, rest)
		}
		// Without a command of its own the container runs its image's,
		// which only the image can tell (checked at its start).
		if !unparsed[key] && !(key == "command" && c.Command == nil) {
			bad(key, "%s", fe.Msg)
		}
	}
	return s, errs
}

// mountSize converts a mount's size. A tmpfs's is above 0; a bind has
// none, which Validate says of a size that is not 0, and is said here
// of a "0" Validate cannot tell from no size.
func mountSize(m MountConfig, key string, bad func(string, string, ...any)) int64 {
	if m.Type != "tmpfs" {
		n, err := container.ParseSize(m.Size)
		switch {
		case err != nil:
			bad(key, "%v", err)
		case n == 0 && (m.Type == "" || m.Type == "bind"):
			bad(key, "mount size: only a tmpfs has a size")
		}
		return n
	}
	n, err := container.ParseTmpfsSize(m.Size)
	if err != nil {
		bad(key, "%v", err)
	}
	return n
}

// userNS converts user_ns, uid_map and gid_map: maps imply a user
// namespace, whose maps default to DefaultIDMap.
func (c ContainerConfig) userNS(bad func(string, string, ...any)) *container.UserNS {
	on := len(c.UIDMap) > 0 || len(c.GIDMap) > 0
	if c.UserNS != nil {
		if !*c.UserNS && on {
			bad("user_ns", "false, but uid_map or gid_map is given")
		}
		on = *c.UserNS
	}
	if !on {
		return nil
	}
	ns := &container.UserNS{}
	for _, m := range []struct {
		key  string
		list idMapList
		dst  *[]container.IDMap
	}{{"uid_map", c.UIDMap, &ns.UIDMap}, {"gid_map", c.GIDMap, &ns.GIDMap}} {
		list := m.list
		if len(list) == 0 {
			list = idMapList{container.DefaultIDMap}
		}
		for _, text := range list {
			im, err := container.ParseIDMap(text)
			if err != nil {
				bad(m.key, "%v", err)
				continue
			}
			*m.dst = append(*m.dst, im)
		}
	}
	return ns
}

// rlimits converts [container.rlimits]: a number, or "SOFT:HARD".
func (c ContainerConfig) rlimits(bad func(string, string, ...any)) []container.Rlimit {
	names := make([]string, 0, len(c.Rlimits))
	for name := range c.Rlimits {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []container.Rlimit
	for _, name := range names {
		var value string
		switch t := c.Rlimits[name].(type) {
		case int64:
			value = strconv.FormatInt(t, 10)
		case string:
			value = t
		default:
			bad("rlimits."+toml.Key{name}.String(), `want a number or "SOFT:HARD", got %s`, tomlType(t))
			continue
		}
		r, err := container.ParseRlimit(name, value)
		if err != nil {
			bad("rlimits."+toml.Key{name}.String(), "%v", err)
			continue
		}
		out = append(out, r)
	}
	return out
}

// toLimits converts [container.limits]; sizes are K, M, G, T strings.
func (l LimitsConfig) toLimits(bad func(string, string, ...any)) container.Limits {
	out := container.Limits{
		CPUs: l.CPUs, CPUWeight: l.CPUWeight, CPUSet: l.CPUSet, Pids: l.Pids, IOWeight: l.IOWeight, IOMax: l.IOMax,
	}
	size := func(key, v string) int64 {
		if v == "" {
			return 0
		}
		n, err := container.ParseSize(v)
		if err != nil {
			bad("limits."+key, "%v", err)
		}
		return n
	}
	out.Memory = size("memory", l.Memory)
	out.MemoryHigh = size("memory_high", l.MemoryHigh)
	if l.MemorySwap == "unlimited" {
		out.MemorySwap = -1
	} else {
		out.MemorySwap = size("memory_swap", l.MemorySwap)
	}
	return out
}

// Spec turns a validated [[container]] into a container spec.
func (c ContainerConfig) Spec(rootfs string) container.Spec {
	s, _ := c.toSpec(rootfs)
	return s
}
