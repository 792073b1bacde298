package boot

import (
	"time"

	"berth/board"
	"berth/container"
)

// DefaultSocket is where PID 1 serves the control protocol.
const DefaultSocket = "/run/berth.sock"

// The control protocol: the client writes one Request as a JSON line; the
// server answers with one Response as a JSON line, or, for logs with
// Follow, one Response per batch of lines until the client hangs up. An
// apply, reload or rollback with Progress is answered by a Response with
// only Progress set for each step, then by its one answer. Only root may
// connect (SO_PEERCRED).

// Request is a control request.
type Request struct {
	// Verb is ps, stats, status, logs, start, stop, restart, reload,
	// apply, rollback, reboot or poweroff.
	Verb string `json:"verb"`
	Name string `json:"name,omitempty"`
	// Names are the containers stats asks about, each once at most;
	// none: the running ones.
	Names []string `json:"names,omitempty"`
	// Lines is how many of a container's last lines logs asks for: all
	// when 0, none when negative (with Follow: only the lines to come).
	Lines  int  `json:"lines,omitempty"`
	Follow bool `json:"follow,omitempty"`
	// Timeout overrides the container's stop_timeout for stop and
	// restart, in seconds; nil keeps it.
	Timeout *int64 `json:"timeout,omitempty"`
	// Exec is the command of exec (exec.go).
	Exec *ExecRequest `json:"exec,omitempty"`
	// Path is the config file apply makes a generation of: a path as
	// berth sees it.
	Path string `json:"path,omitempty"`
	// Progress asks apply, reload and rollback for a line per step
	// before their answer (Response.Progress).
	Progress bool `json:"progress,omitempty"`
}

// ExecRequest is a command to run in the running container Request.Name.
// Without TTY, the request line comes with the client's stdin, stdout and
// stderr as SCM_RIGHTS; with TTY, berth's first answer comes with the
// master of the command's terminal.
type ExecRequest struct {
	Args []string `json:"args"`
	// Env overrides the container's environment, K=V each.
	Env []string `json:"env,omitempty"`
	// User is UID[:GID]; empty: the container's user.
	User string `json:"user,omitempty"`
	// Workdir is the working directory; empty: the container's.
	Workdir string `json:"workdir,omitempty"`
	TTY     bool   `json:"tty,omitempty"`
	// Rows and Cols are the terminal's first size.
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
}

// Response is the answer to a Request.
type Response struct {
	Error     string           `json:"error,omitempty"`
	Message   string           `json:"message,omitempty"`
	Status    *Status          `json:"status,omitempty"`
	Processes []Process        `json:"processes,omitempty"`
	Stats     []ContainerStats `json:"stats,omitempty"`
	Lines     []LogLine        `json:"lines,omitempty"`
	// More says, in an answer to logs without Follow, that another batch
	// of lines follows this one: berth sends a large ring in batches.
	More bool `json:"more,omitempty"`
	// ExecPid is the exec'd command's pid (as berth sees it), in the
	// first answer to exec; ExitCode its status (128+N for signal N) in
	// the last, or with Error the exit status berth exec gives for the
	// failure (ExecNotRunning, 125, 126, 127).
	ExecPid  int  `json:"exec_pid,omitempty"`
	ExitCode *int `json:"exit_code,omitempty"`
	// Progress is one step of an update that asked for them
	// (Request.Progress): not the answer, which follows.
	Progress string `json:"progress,omitempty"`
}

// Process is one row of berth ps.
type Process struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Pid   int    `json:"pid,omitempty"`
	// Started is when the running container started; absent when it
	// does not run.
	Started     *time.Time `json:"started,omitempty"`
	UptimeSec   float64    `json:"uptime_seconds,omitempty"`
	Restarts    int        `json:"restarts"`
	Memory      int64      `json:"memory_bytes,omitempty"`
	MemoryLimit int64      `json:"memory_limit_bytes,omitempty"`
	// LastExit describes the last run's end; ExitCode is its status as a
	// shell gives it (128+N for signal N, 125 for a failed start) and
	// ExitSignal the signal that killed it.
	LastExit   string `json:"last_exit,omitempty"`
	ExitCode   *int   `json:"exit_code,omitempty"`
	ExitSignal string `json:"exit_signal,omitempty"`
	OOMKilled  bool   `json:"oom_killed,omitempty"`
	Detail     string `json:"detail,omitempty"`
	// Health is a running container's health, when it has a check:
	// starting, healthy or unhealthy (berth status has the details).
	Health string `json:"health,omitempty"`
	// Address is a bridge container's address (kept while it is
	// stopped); Ports are its published ports while it runs,
	// "HOST:CONTAINER/PROTO".
	Address string   `json:"address,omitempty"`
	Ports   []string `json:"ports,omitempty"`
	// AppArmor and SELinuxLabel are the profile and the context the
	// container runs under (the config's: they do not change).
	AppArmor     string `json:"apparmor,omitempty"`
	SELinuxLabel string `json:"selinux_label,omitempty"`
	// Stats is the running container's resource use.
	Stats *Stats `json:"stats,omitempty"`
}

// ContainerStats is one row of berth stats.
type ContainerStats struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// Stats is absent when the container does not run.
	Stats *Stats `json:"stats,omitempty"`
}

// Stats is a running container's resource use: the figures of its
// cgroup, and its CPU use over the interval since berth last sampled it
// (or since it started).
type Stats struct {
	// CPUPercent is the CPU the container used over the last
	// CPUIntervalSec, in percent of one CPU (200 is two busy CPUs).
	// Absent while the container's CPU time cannot be read, or until
	// the interval reaches 200 ms after it started.
	CPUPercent     *float64 `json:"cpu_percent,omitempty"`
	CPUIntervalSec float64  `json:"cpu_interval_seconds,omitempty"`
	container.Stats
	// Error names the cgroup files that could not be read, and why.
	Error string `json:"error,omitempty"`
}

// Status is berth status.
type Status struct {
	Version   string      `json:"version"`
	PID1      bool        `json:"pid1"`
	Board     board.Board `json:"board"`
	UptimeSec float64     `json:"uptime_seconds"` // the machine's
	// BerthUptimeSec is how long this berth has run: the machine's
	// uptime as PID 1, less under berth boot on a host.
	BerthUptimeSec float64     `json:"berth_uptime_seconds"`
	Kernel         string      `json:"kernel"`
	Cgroups        string      `json:"cgroups"`
	Config         string      `json:"config"`
	Watchdog       string      `json:"watchdog"`
	Images         []ImageInfo `json:"images"`
	Containers     int         `json:"containers"`
	Running        int         `json:"running"`
	RSS            int64       `json:"berth_rss_bytes"`
	RSSAnon        int64       `json:"berth_rss_anon_bytes"`
	RSSFile        int64       `json:"berth_rss_file_bytes"`
	// Memory is berth's own memory in detail (memory.go).
	Memory MemoryInfo `json:"berth_memory"`
	Clock  *ClockInfo `json:"clock,omitempty"`
	// Storage is the data partition ([storage]).
	Storage *StorageInfo `json:"storage,omitempty"`
	// Network lists the appliance's own interfaces ([[network.interface]]).
	Network []board.InterfaceStatus `json:"network,omitempty"`
	// Security is the kernel's security modules and berth's policy.
	Security *SecurityInfo `json:"security,omitempty"`
	// Health is the health of each container that has a check.
	Health []HealthInfo `json:"health,omitempty"`
	// Generation is the running generation (generation.go).
	Generation *GenerationInfo `json:"generation,omitempty"`
}

// ImageInfo is a container's image as berth status shows it.
type ImageInfo struct {
	Container string `json:"container"`
	Path      string `json:"path"`
	Rootfs    string `json:"rootfs,omitempty"`
	// AppArmor and SELinuxLabel are the container's profile and context.
	AppArmor     string `json:"apparmor,omitempty"`
	SELinuxLabel string `json:"selinux_label,omitempty"`
}
