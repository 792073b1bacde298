package boot

import (
	"fmt"
	"strings"
	"time"
)

// Health check defaults and ranges: docker's defaults, ranges an
// appliance can live with.
const (
	DefaultHealthInterval = 30 * time.Second
	DefaultHealthTimeout  = 30 * time.Second
	DefaultHealthRetries  = 3
	minHealthInterval     = 100 * time.Millisecond
	maxHealthInterval     = 24 * time.Hour
	minHealthTimeout      = 100 * time.Millisecond
	maxHealthTimeout      = time.Hour
	maxHealthStartPeriod  = 24 * time.Hour
	maxHealthRetries      = 100
)

// HealthConfig is a container's [container.health] table: a command run
// inside the running container, like berth exec, every interval.
type HealthConfig struct {
	// Command is the check, an argv array as command is; exit 0 is
	// healthy. For a shell, ["/bin/sh", "-c", "..."].
	Command     []string `toml:"command"`
	Interval    string   `toml:"interval"`
	Timeout     string   `toml:"timeout"`
	Retries     *int     `toml:"retries"`
	StartPeriod string   `toml:"start_period"`
	// OnUnhealthy is "none" (default: health is only reported) or
	// "restart".
	OnUnhealthy string `toml:"on_unhealthy"`
}

// healthCheck is a [container.health] table checked and with its
// defaults filled in.
type healthCheck struct {
	command                        []string
	interval, timeout, startPeriod time.Duration
	retries                        int
	restart                        bool // on_unhealthy = "restart"
}

// healthCheck converts [container.health], reporting problems through
// bad as supervision does; nil without the table.
func (c ContainerConfig) healthCheck(bad func(string, string, ...any)) *healthCheck {
	h := c.Health
	if h == nil {
		return nil
	}
	hc := &healthCheck{command: h.Command, interval: DefaultHealthInterval, timeout: DefaultHealthTimeout, retries: DefaultHealthRetries}
	switch {
	case len(h.Command) == 0 || h.Command[0] == "":
		bad("health.command", `missing command: want an array such as ["/bin/check", "--quiet"] (for a shell: ["/bin/sh", "-c", "..."])`)
	default:
		for i, a := range h.Command {
			if strings.IndexByte(a, 0) >= 0 {
				bad("health.command", "argument %d holds a NUL byte", i)
			}
		}
	}
	dur := func(key, v string, lo, hi time.Duration, dst *time.Duration) {
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < lo || d > hi {
			bad("health."+key, "invalid duration %q: want %s to %s, e.g. \"30s\"", v, lo, hi)
			return
		}
		*dst = d
	}
	dur("interval", h.Interval, minHealthInterval, maxHealthInterval, &hc.interval)
	dur("timeout", h.Timeout, minHealthTimeout, maxHealthTimeout, &hc.timeout)
	dur("start_period", h.StartPeriod, 0, maxHealthStartPeriod, &hc.startPeriod)
	if r := h.Retries; r != nil {
		if *r < 1 || *r > maxHealthRetries {
			bad("health.retries", "%d: want 1 to %d failed checks in a row", *r, maxHealthRetries)
		} else {
			hc.retries = *r
		}
	}
	switch h.OnUnhealthy {
	case "", "none":
	case "restart":
		hc.restart = true
		if c.Restart == "" || c.Restart == "never" {
			bad("health.on_unhealthy", `"restart" needs restart = "on-failure" or "always": an unhealthy container is stopped as a failed one, and restart = %q would leave it down`, orNever(c.Restart))
		}
	default:
		bad("health.on_unhealthy", `invalid value %q: want "none" or "restart"`, h.OnUnhealthy)
	}
	return hc
}

func orNever(restart string) string {
	if restart == "" {
		return "never"
	}
	return restart
}

// describe is the check as the log shows it at a start.
func (hc *healthCheck) describe() string {
	return fmt.Sprintf("every %s, timeout %s, unhealthy after %d failed in a row", hc.interval, hc.timeout, hc.retries)
}
