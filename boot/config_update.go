package boot

import "time"

// UpdateConfig is the [update] table: how a new generation (berth apply,
// berth reload, SIGHUP) proves itself before it is committed.
type UpdateConfig struct {
	// GracePeriod is how long a changed container without a health
	// check must stay up — running, not restarted, not exited non-zero —
	// before the generation may commit; a oneshot must exit 0 within it
	// (default "10s", "0s" to "1h").
	GracePeriod string `toml:"grace_period"`
	// MaxBootAttempts is how many boots a generation being tried gets
	// (a power cut or a crash ended the others) before the next boot
	// reverts to the committed one (default 3, 1 to 10).
	MaxBootAttempts *int `toml:"max_boot_attempts"`
}

// Defaults and ranges of [update].
const (
	DefaultGracePeriod     = 10 * time.Second
	maxGracePeriod         = time.Hour
	DefaultMaxBootAttempts = 3
	maxBootAttemptsLimit   = 10
)

// check validates the [update] table.
func (u UpdateConfig) check(v *validator) {
	if u.GracePeriod != "" {
		if d, err := time.ParseDuration(u.GracePeriod); err != nil || d < 0 || d > maxGracePeriod {
			v.addKey("update.grace_period", "invalid duration %s: want 0s to %s", quoteValue(u.GracePeriod), maxGracePeriod)
		}
	}
	if n := u.MaxBootAttempts; n != nil && (*n < 1 || *n > maxBootAttemptsLimit) {
		v.addKey("update.max_boot_attempts", "%d: want 1 to %d", *n, maxBootAttemptsLimit)
	}
}

// grace is the grace period: grace_period, or the default.
func (u UpdateConfig) grace() time.Duration {
	if d, err := time.ParseDuration(u.GracePeriod); err == nil && u.GracePeriod != "" {
		return d
	}
	return DefaultGracePeriod
}

// maxBoots is max_boot_attempts, or the default.
func (u UpdateConfig) maxBoots() int {
	if u.MaxBootAttempts == nil {
		return DefaultMaxBootAttempts
	}
	return *u.MaxBootAttempts
}
