package boot

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"syscall"
	"time"

	"berth/container"
)

// Supervision defaults.
const (
	DefaultStopTimeout   = 10 * time.Second
	DefaultRestartWindow = 10 * time.Minute
	DefaultLogSize       = 256 << 10
	DefaultLogFileSize   = 1 << 20
	DefaultLogFiles      = 3
	// The ranges of log_size, log_file_size and log_files.
	minLogSize     = 4 << 10
	maxLogSize     = 64 << 20
	maxLogFileSize = 1 << 30
	maxLogFiles    = 100
)

// supervision is a [[container]]'s supervision settings, checked and
// with defaults filled in.
type supervision struct {
	restart       string // never, on-failure, always
	maxRestarts   int    // 0: no limit
	restartWindow time.Duration
	restartDelay  time.Duration // the first restart's backoff
	after         []string
	oneshot       bool
	stopSignal    syscall.Signal
	stopTimeout   time.Duration
	logSize       int
	logFile       string
	logFileSize   int64
	logFiles      int
	logConsole    bool
	health        *healthCheck // nil: no [container.health]
}

// supervision converts the table's supervision keys, reporting problems
// through bad like toSpec does.
func (c ContainerConfig) supervision(bad func(string, string, ...any)) supervision {
	s := supervision{
		restart: c.Restart, maxRestarts: c.MaxRestarts, restartWindow: DefaultRestartWindow,
		restartDelay: BackoffMin,
		after:        c.After, oneshot: c.Oneshot, stopSignal: syscall.SIGTERM, stopTimeout: DefaultStopTimeout,
		logSize: DefaultLogSize, logFile: c.LogFile, logFileSize: DefaultLogFileSize, logFiles: DefaultLogFiles,
		logConsole: c.LogConsole == nil || *c.LogConsole,
	}
	switch c.Restart {
	case "":
		s.restart = "never"
	case "never", "on-failure", "always":
	default:
		bad("restart", "invalid value %q: want \"always\", \"on-failure\" or \"never\"", c.Restart)
	}
	if c.Oneshot && c.Restart == "always" {
		bad("restart", "\"always\" contradicts oneshot = true: a oneshot runs once (use \"on-failure\" to retry it)")
	}
	if c.MaxRestarts < 0 {
		bad("max_restarts", "must be 0 (no limit) or more")
	}
	dur := func(key, v string, dst *time.Duration) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			bad(key, "invalid duration %q: want e.g. \"10s\" or \"5m\"", v)
		case d <= 0:
			bad(key, "invalid duration %q: must be above 0, e.g. \"10s\" or \"5m\"", v)
		default:
			*dst = d
		}
	}
	dur("restart_window", c.RestartWindow, &s.restartWindow)
	dur("stop_timeout", c.StopTimeout, &s.stopTimeout)
	if c.RestartDelay != "" {
		d, err := time.ParseDuration(c.RestartDelay)
		if err != nil || d < 0 || d > BackoffMax {
			bad("restart_delay", "invalid duration %q: want 0 (restart at once) to %s, e.g. \"1s\"", c.RestartDelay, BackoffMax)
		}
		s.restartDelay = d
	}
	if c.StopSignal != "" {
		sig, err := parseSignal(c.StopSignal)
		switch {
		case errors.Is(err, errUnknownSignal):
			bad("stop_signal", "%v: want a name such as \"SIGTERM\", \"INT\" or \"SIGRTMIN+3\"", err)
		case err != nil:
			bad("stop_signal", "%v", err)
		}
		s.stopSignal = sig
	}
	c.logSettings(&s, bad)
	s.health = c.healthCheck(bad)
	return s
}

// logSettings converts the log keys into s, reporting problems through
// bad.
func (c ContainerConfig) logSettings(s *supervision, bad func(string, string, ...any)) {
	// size parses a log size and checks it is within [lo, hi]; ok is
	// false when it is absent or was refused.
	size := func(key, v string, lo, hi int64, want string) (n int64, ok bool) {
		if v == "" {
			return 0, false
		}
		n, err := container.ParseSize(v)
		switch {
		case err != nil:
			bad(key, "%v", err)
		case n < lo || n > hi:
			bad(key, "%s: want between %s", quoteValue(v), want)
		default:
			return n, true
		}
		return 0, false
	}
	if n, ok := size("log_size", c.LogSize, minLogSize, maxLogSize, "4K and 64M"); ok {
		s.logSize = int(n)
	}
	// Without log_file, log_file_size and log_files have no effect but
	// are still checked: refusing them would stop a config an older berth
	// booted from booting (README: a valid file stays valid).
	if n, ok := size("log_file_size", c.LogFileSize, minLogSize, maxLogFileSize, "4K and 1G"); ok {
		s.logFileSize = n
	}
	if c.LogFiles != nil {
		if *c.LogFiles < 1 || *c.LogFiles > maxLogFiles {
			bad("log_files", "%d: want 1 to %d", *c.LogFiles, maxLogFiles)
		} else {
			s.logFiles = *c.LogFiles
		}
	}
	if c.LogFile != "" {
		if msg := checkLogFile(c.LogFile); msg != "" {
			bad("log_file", "%s", msg)
		}
	}
}

// checkLogFile says what is wrong with a log_file, "" when nothing: it
// must be absolute and clean, the path of a file. A file is opened as
// filepath.Dir and filepath.Base of the path as written (logfile.go),
// while two containers' files are told apart by their clean paths:
// "/l/d/" (the file "d" in /l/d, opened as /l/d/d) and "/l/d/d" would
// be one file to the ring and two to the clash check.
func checkLogFile(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Sprintf("want an absolute path, got %q", p)
	case strings.HasSuffix(p, "/"):
		return fmt.Sprintf("%s ends in \"/\": want the path of a file, e.g. \"/var/log/app.log\"", container.Quote(p))
	case path.Clean(p) != p:
		return fmt.Sprintf("%s is not a clean path (no \".\", \"..\" or \"//\"): want %s", container.Quote(p), container.Quote(path.Clean(p)))
	}
	return ""
}

// checkOrder validates the after = [...] graph: every name exists, and
// there is no cycle. It reports through v, at the containers' after keys.
func (cfg *Config) checkOrder(v *validator) {
	index := map[string]int{}
	for i, c := range cfg.Container {
		index[c.Name] = i
	}
	for i, c := range cfg.Container {
		for _, a := range c.After {
			if _, ok := index[a]; !ok {
				v.addKey(fmt.Sprintf("container#%d.after", i), "unknown container %q", a)
			} else if a == c.Name {
				v.addKey(fmt.Sprintf("container#%d.after", i), "container %q cannot come after itself", a)
			}
		}
	}
	// Depth-first search for a cycle; report it once, at its first member.
	state := make([]int, len(cfg.Container)) // 0 new, 1 on stack, 2 done
	var path []string
	var visit func(i int) bool
	visit = func(i int) bool {
		state[i] = 1
		path = append(path, cfg.Container[i].Name)
		for _, a := range cfg.Container[i].After {
			j, ok := index[a]
			if !ok || j == i {
				continue
			}
			if state[j] == 1 {
				start := 0
				for k, n := range path {
					if n == a {
						start = k
					}
				}
				cycle := append(append([]string{}, path[start:]...), a)
				v.addKey(fmt.Sprintf("container#%d.after", j), "dependency cycle: %s", strings.Join(cycle, " -> "))
				return true
			}
			if state[j] == 0 && visit(j) {
				return true
			}
		}
		path = path[:len(path)-1]
		state[i] = 2
		return false
	}
	for i := range cfg.Container {
		if state[i] == 0 && visit(i) {
			return
		}
	}
}
