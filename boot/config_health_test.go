package boot

import (
	"strings"
	"testing"
	"time"
)

// TestHealthKeys: [container.health] reaches the supervision with its
// defaults, and each key is accepted at the ends of its range and
// refused just past them, naming the key and its line.
func TestHealthKeys(t *testing.T) {
	const base = "[[container]]\nname = \"a\"\nimage = \"i\"\nrestart = \"always\"\n[container.health]\ncommand = [\"/bin/check\"]\n"
	cfg, err := ParseConfig("f.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	hc := cfg.Container[0].supervision(func(string, string, ...any) {}).health
	want := healthCheck{command: []string{"/bin/check"}, interval: 30 * time.Second, timeout: 30 * time.Second, retries: 3}
	if hc == nil || hc.interval != want.interval || hc.timeout != want.timeout || hc.retries != want.retries ||
		hc.startPeriod != 0 || hc.restart || hc.command[0] != "/bin/check" {
		t.Fatalf("defaults: %+v, want %+v", hc, want)
	}
	if cfg, _ := ParseConfig("f.toml", []byte("[[container]]\nname = \"a\"\nimage = \"i\"\n")); cfg.Container[0].supervision(func(string, string, ...any) {}).health != nil {
		t.Error("a check without [container.health]")
	}
	for _, tc := range []struct {
		key, value string
		want       string // "" valid, else in the error
		check      func(*healthCheck) bool
	}{
		{"interval", `"100ms"`, "", func(h *healthCheck) bool { return h.interval == 100*time.Millisecond }},
		{"interval", `"99ms"`, `f.toml:6: container.health.interval: invalid duration "99ms": want 100ms to 24h0m0s`, nil},
		{"interval", `"24h"`, "", func(h *healthCheck) bool { return h.interval == 24*time.Hour }},
		{"interval", `"24h0m0.001s"`, "container.health.interval: invalid duration", nil},
		{"interval", `"often"`, "container.health.interval: invalid duration", nil},
		{"timeout", `""`, "", func(h *healthCheck) bool { return h.timeout == 30*time.Second }}, // the key left out
		{"timeout", `"100ms"`, "", func(h *healthCheck) bool { return h.timeout == 100*time.Millisecond }},
		{"timeout", `"99ms"`, "f.toml:6: container.health.timeout: invalid duration \"99ms\": want 100ms to 1h0m0s", nil},
		{"timeout", `"1h"`, "", func(h *healthCheck) bool { return h.timeout == time.Hour }},
		{"timeout", `"61m"`, "container.health.timeout: invalid duration", nil},
		{"start_period", `"0s"`, "", func(h *healthCheck) bool { return h.startPeriod == 0 }},
		{"start_period", `"-1ms"`, "f.toml:6: container.health.start_period: invalid duration \"-1ms\": want 0s to 24h0m0s", nil},
		{"start_period", `"24h"`, "", func(h *healthCheck) bool { return h.startPeriod == 24*time.Hour }},
		{"start_period", `"25h"`, "container.health.start_period: invalid duration", nil},
		{"retries", "1", "", func(h *healthCheck) bool { return h.retries == 1 }},
		{"retries", "0", "f.toml:6: container.health.retries: 0: want 1 to 100 failed checks in a row", nil},
		{"retries", "100", "", func(h *healthCheck) bool { return h.retries == 100 }},
		{"retries", "101", "container.health.retries: 101: want 1 to 100", nil},
		{"retries", `"3"`, "container.health.retries: want an integer, got a string", nil},
		{"on_unhealthy", `"none"`, "", func(h *healthCheck) bool { return !h.restart }},
		{"on_unhealthy", `"restart"`, "", func(h *healthCheck) bool { return h.restart }},
		{"on_unhealthy", `"reboot"`, `f.toml:6: container.health.on_unhealthy: invalid value "reboot": want "none" or "restart"`, nil},
		{"command", `["/bin/sh", "-c", "wget -q -O- localhost"]`, "", func(h *healthCheck) bool { return len(h.command) == 3 }},
		{"command", `[]`, "f.toml:6: container.health.command: missing command", nil},
		{"command", `[""]`, "container.health.command: missing command", nil},
		{"command", `["/bin/check", "a\u0000b"]`, "container.health.command: argument 1 holds a NUL byte", nil},
		{"command", `"/bin/check"`, "container.health.command: want an array, got a string", nil},
		{"interval_s", `1`, "f.toml:6: container.health.interval_s: unknown key", nil},
	} {
		src := strings.Replace(base, "command = [\"/bin/check\"]\n", "", 1)
		if tc.key != "command" {
			src += "command = [\"/bin/check\"]\n"
			src = strings.Replace(src, "[container.health]\n", "[container.health]\n"+tc.key+" = "+tc.value+"\n", 1)
		} else {
			src += "command = " + tc.value + "\n"
		}
		if !strings.Contains(strings.Split(src, "\n")[5], tc.key) {
			t.Fatalf("%s = %s: not on line 6:\n%s", tc.key, tc.value, src)
		}
		cfg, err := ParseConfig("f.toml", []byte(src))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s = %s: %v", tc.key, tc.value, err)
		case tc.want == "" && !tc.check(cfg.Container[0].supervision(func(string, string, ...any) {}).health):
			t.Errorf("%s = %s did not reach the check: %+v", tc.key, tc.value, cfg.Container[0].supervision(func(string, string, ...any) {}).health)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s = %s: error %v, want %q", tc.key, tc.value, err, tc.want)
		}
	}
}

// TestHealthRestartNeedsPolicy: on_unhealthy = "restart" goes through
// the restart policy, so restart = "never" (the default) is refused.
func TestHealthRestartNeedsPolicy(t *testing.T) {
	for restart, want := range map[string]string{
		"":                           `f.toml:5: container.health.on_unhealthy: "restart" needs restart = "on-failure" or "always"`,
		"restart = \"never\"\n":      `restart = "never" would leave it down`,
		"restart = \"on-failure\"\n": "",
		"restart = \"always\"\n":     "",
	} {
		src := "[[container]]\nname = \"a\"\nimage = \"i\"\n[container.health]\non_unhealthy = \"restart\"\ncommand = [\"/c\"]\n"
		src = strings.Replace(src, "[container.health]", restart+"[container.health]", 1)
		if restart != "" {
			want = strings.Replace(want, "f.toml:5", "f.toml:6", 1)
		}
		_, err := ParseConfig("f.toml", []byte(src))
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: error %v, want %q", restart, err, want)
		}
	}
}
