package boot

import (
	"fmt"
	"strconv"
	"strings"

	"berth/container"
)

// ContainerConfig is one [[container]] table. Every key but name, image
// and command is optional; its absence means the runtime's safe default.
type ContainerConfig struct {
	Name string `toml:"name"`
	// Image is the path of an image file; a relative path is relative to
	// the config file's directory.
	Image string `toml:"image"`
	imageKeys
	Command  []string `toml:"command"`
	Env      []string `toml:"env"`
	Hostname string   `toml:"hostname"`
	Workdir  string   `toml:"workdir"`
	// User is "UID" or "UID:GID"; Groups are supplementary group ids.
	User   string   `toml:"user"`
	Groups []uint32 `toml:"groups"`

	Net          string        `toml:"net"`
	UserNS       bool          `toml:"user_ns"`
	UIDMap       []string      `toml:"uid_map"`
	GIDMap       []string      `toml:"gid_map"`
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

	// Supervision: restart is "never" (default: the files of the first
	// releases keep their meaning), "on-failure" or "always".
	Restart       string   `toml:"restart"`
	MaxRestarts   int      `toml:"max_restarts"`
	RestartWindow string   `toml:"restart_window"`
	After         []string `toml:"after"`
	Oneshot       bool     `toml:"oneshot"`
	StopSignal    string   `toml:"stop_signal"`
	StopTimeout   string   `toml:"stop_timeout"`

	// Logs: the in-memory ring, an optional rotated file, the console.
	LogSize     string `toml:"log_size"`
	LogFile     string `toml:"log_file"`
	LogFileSize string `toml:"log_file_size"`
	LogFiles    int    `toml:"log_files"`
	LogConsole  *bool  `toml:"log_console"`
}

// MountConfig is one [[container.mount]] table.
type MountConfig struct {
	// Type is "bind" (default) or "tmpfs".
	Type     string `toml:"type"`
	Source   string `toml:"source"`
	Target   string `toml:"target"`
	Readonly bool   `toml:"readonly"`
	// Size caps a tmpfs, e.g. "16M".
	Size string `toml:"size"`
}

// LimitsConfig is a container's [container.limits] table.
type LimitsConfig struct {
	// Memory is a size such as "64M"; empty means no limit.
	Memory     string `toml:"memory"`
	MemoryHigh string `toml:"memory_high"`
	// MemorySwap is swap allowed beyond Memory: a size, or "unlimited".
	MemorySwap string   `toml:"memory_swap"`
	CPUs       float64  `toml:"cpus"`
	CPUWeight  uint64   `toml:"cpu_weight"`
	CPUSet     string   `toml:"cpuset"`
	Pids       int64    `toml:"pids"`
	IOWeight   uint64   `toml:"io_weight"`
	IOMax      []string `toml:"io_max"`
}

// fieldError is a problem with one key of a [[container]] table, relative
// to the table ("limits.memory").
type fieldError struct{ key, msg string }

// toSpec converts the table into a container spec for rootfs, collecting
// every problem instead of stopping at the first: it is both the
// validation of `berth check` and the conversion at boot.
func (c ContainerConfig) toSpec(rootfs string) (container.Spec, []fieldError) {
	var errs []fieldError
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fieldError{key, fmt.Sprintf(format, args...)})
	}
	s := container.Spec{
		Name: c.Name, Rootfs: rootfs, Args: c.Command, Env: c.Env, Hostname: c.Hostname, Cwd: c.Workdir,
		Net: c.Net, ReadonlyRoot: c.ReadonlyRoot, Devices: c.Devices, Seccomp: c.Seccomp, OOMScoreAdj: c.OOMScoreAdj,
	}
	if c.Name != "" {
		if err := container.CheckName(c.Name); err != nil {
			bad("name", "%v", err)
		}
	}
	if len(c.Command) == 0 || c.Command[0] == "" {
		bad("command", "missing command: want an array such as [\"/bin/app\", \"--flag\"]")
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			bad("env", "invalid entry %q: want K=V", kv)
		}
	}
	switch c.Net {
	case "", "none", "host":
	default:
		bad("net", "invalid value %q: want \"none\" or \"host\"", c.Net)
	}
	if c.Workdir != "" && c.Workdir[0] != '/' {
		bad("workdir", "want an absolute path, got %q", c.Workdir)
	}
	if c.User != "" {
		u, err := container.ParseUser(c.User)
		if err != nil {
			bad("user", "%v", err)
		}
		s.User = u
	}
	s.User.Groups = c.Groups
	if c.UserNS || len(c.UIDMap) > 0 || len(c.GIDMap) > 0 {
		if !c.UserNS {
			bad("user_ns", "uid_map and gid_map need user_ns = true")
		}
		ns := &container.UserNS{}
		for _, m := range orDefault(c.UIDMap) {
			im, err := container.ParseIDMap(m)
			if err != nil {
				bad("uid_map", "%v", err)
			}
			ns.UIDMap = append(ns.UIDMap, im)
		}
		for _, m := range orDefault(c.GIDMap) {
			im, err := container.ParseIDMap(m)
			if err != nil {
				bad("gid_map", "%v", err)
			}
			ns.GIDMap = append(ns.GIDMap, im)
		}
		s.UserNS = ns
	}
	for _, m := range c.Mount {
		cm := container.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Readonly: m.Readonly}
		if m.Size != "" {
			n, err := container.ParseSize(m.Size)
			if err != nil {
				bad("mount.size", "%v", err)
			}
			cm.Size = n
		}
		if err := container.CheckMount(cm); err != nil {
			bad("mount", "%v", err)
		}
		s.Mounts = append(s.Mounts, cm)
	}
	for _, d := range c.Devices {
		if len(d) < 6 || d[:5] != "/dev/" {
			bad("devices", "invalid device %q: want a host path under /dev", d)
		}
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
	s.AllowNewPrivileges = c.NoNewPrivileges != nil && !*c.NoNewPrivileges
	if c.OOMScoreAdj != nil && (*c.OOMScoreAdj < -1000 || *c.OOMScoreAdj > 1000) {
		bad("oom_score_adj", "must be between -1000 and 1000")
	}
	for name, v := range c.Rlimits {
		var value string
		switch t := v.(type) {
		case int64:
			value = strconv.FormatInt(t, 10)
		case string:
			value = t
		default:
			bad("rlimits."+name, "want a number or \"SOFT:HARD\"")
			continue
		}
		r, err := container.ParseRlimit(name, value)
		if err != nil {
			bad("rlimits."+name, "%v", err)
		}
		s.Rlimits = append(s.Rlimits, r)
	}
	s.Limits = c.Limits.toLimits(bad)
	return s, errs
}

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
	if err := out.Check(); err != nil {
		// Check's messages start with the key they are about.
		key := "limits"
		if f := strings.Fields(err.Error()); len(f) > 0 && strings.Trim(f[0], "abcdefghijklmnopqrstuvwxyz_") == "" {
			key += "." + f[0]
		}
		bad(key, "%v", err)
	}
	if l.Pids < 0 {
		bad("limits.pids", "must be 0 (no limit) or more")
	}
	return out
}

func orDefault(maps []string) []string {
	if len(maps) == 0 {
		return []string{container.DefaultIDMap}
	}
	return maps
}

// Spec turns a validated [[container]] into a container spec.
func (c ContainerConfig) Spec(rootfs string) container.Spec {
	s, _ := c.toSpec(rootfs)
	return s
}
