package boot

import (
	"path"
	"strings"
	"time"
)

// BoardConfig is the [board] table: overrides of what board detection
// decides.
type BoardConfig struct {
	// Watchdog is the device to arm: a path, "none", or "" to use the
	// board profile's.
	Watchdog string `toml:"watchdog"`
	// WatchdogTimeout is how long the supervisor may stall before the
	// hardware resets the machine (default 30s).
	WatchdogTimeout string `toml:"watchdog_timeout"`
	// Modules are kernel modules loaded at boot besides the profile's.
	Modules []string `toml:"modules"`
}

// DefaultWatchdogTimeout is the watchdog timeout when the config sets none.
const DefaultWatchdogTimeout = 30 * time.Second

func (b BoardConfig) check(v *validator) {
	if b.Watchdog != "" && b.Watchdog != "none" && (!strings.HasPrefix(b.Watchdog, "/dev/") || path.Clean(b.Watchdog) != b.Watchdog) {
		v.addKey("board.watchdog", "want a device under /dev (a clean path), or \"none\", got %q", b.Watchdog)
	}
	if b.WatchdogTimeout != "" {
		if d, err := time.ParseDuration(b.WatchdogTimeout); err != nil || d < time.Second || d > time.Hour {
			v.addKey("board.watchdog_timeout", "invalid duration %q: want 1s to 1h", b.WatchdogTimeout)
		}
	}
	for _, m := range b.Modules {
		if m == "" || strings.ContainsAny(m, "/ ") {
			v.addKey("board.modules", "invalid module name %q", m)
		}
	}
}

// watchdogTimeout returns the configured timeout or the default.
func (b BoardConfig) watchdogTimeout() time.Duration {
	if d, err := time.ParseDuration(b.WatchdogTimeout); err == nil && d > 0 {
		return d
	}
	return DefaultWatchdogTimeout
}
