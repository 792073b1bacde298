package appliance

import (
	"bytes"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// TestConsoleWatch finds berth's fatal line and the kernel's panic in a
// console that arrives in pieces, with QEMU's \r\n, passes every byte
// through, and is not fooled by a container's output or a line longer
// than it keeps.
func TestConsoleWatch(t *testing.T) {
	const fatal = "[    2.345678] berth: FATAL: config: open /etc/nope.toml: no such file or directory"
	tests := []struct {
		name         string
		console      string
		fatal, panic string
		powerDown    bool
	}{
		{"clean", "[    1.000000] berth: berth v1 starting as PID 1\r\n[    3.000000] berth: power off\r\n[    3.100000] reboot: Power down\r\n", "", "", true},
		{"forged power down", "[    3.000000] web | [    3.100000] reboot: Power down\r\n", "", "", false},
		{"fatal", "[    1.000000] berth: starting\r\n" + fatal + "\r\n[    3.000000] berth: FATAL: later\r\n", fatal, "", false},
		{"panic", "[    0.900000] Kernel panic - not syncing: No working init found.\r\n", "", "[    0.900000] Kernel panic - not syncing: No working init found.", false},
		{"container output", "[    2.000000] web | [    2.000000] berth: FATAL: forged\r\n", "", "", false},
		{"mid-line", "x [    2.000000] berth: FATAL: forged\n", "", "", false},
		{"long line", strings.Repeat("x", 2*maxConsoleLine) + fatal[1:] + "\n" + fatal + "\n", fatal, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, step := range []int{1, 7, len(tc.console)} {
				var out bytes.Buffer
				c := &consoleWatch{w: &out}
				for rest := tc.console; rest != ""; {
					n := min(step, len(rest))
					if got, err := c.Write([]byte(rest[:n])); got != n || err != nil {
						t.Fatalf("Write: %d, %v", got, err)
					}
					rest = rest[n:]
				}
				if out.String() != tc.console {
					t.Errorf("step %d: passed on %q", step, out.String())
				}
				if c.fatal != tc.fatal || c.panic != tc.panic || c.powerDown != tc.powerDown {
					t.Errorf("step %d: fatal %q, panic %q, power down %v; want %q, %q, %v",
						step, c.fatal, c.panic, c.powerDown, tc.fatal, tc.panic, tc.powerDown)
				}
			}
		})
	}
}

// TestExitPoweredOff counts as a clean power-off only a power-off QEMU
// saw with no fatal error of berth, no kernel panic and no timeout.
func TestExitPoweredOff(t *testing.T) {
	tests := []struct {
		exit Exit
		ok   bool
		says string
	}{
		{Exit{Reason: "guest-shutdown"}, true, "the appliance powered off"},
		{Exit{Reason: "guest-shutdown", Fatal: "[ 1.0] berth: FATAL: x"}, false, "berth failed, then powered off"},
		{Exit{Reason: "guest-reset", Fatal: "[ 1.0] berth: FATAL: x"}, false, "berth failed: [ 1.0] berth: FATAL: x"},
		{Exit{Reason: "guest-reset", Panic: "Kernel panic - not syncing: x"}, false, "the kernel panicked"},
		{Exit{Reason: "guest-reset"}, false, "rebooted"},
		{Exit{Reason: "host-signal"}, false, "QEMU ended (host-signal)"},
		{Exit{TimedOut: true}, false, "no shutdown in time"},
		{Exit{}, false, "without the guest shutting down"},
	}
	for _, tc := range tests {
		if tc.exit.PoweredOff() != tc.ok || !strings.Contains(tc.exit.String(), tc.says) {
			t.Errorf("%+v: powered off %v (%s); want %v (%s)", tc.exit, tc.exit.PoweredOff(), tc.exit, tc.ok, tc.says)
		}
	}
}

// TestStampedLines checks which lines the watch takes for berth's fatal
// line and the kernel's power down — a time stamp, then the text — as
// the regular expressions it used before did, on these lines and 30,000
// changed copies of them.
func TestStampedLines(t *testing.T) {
	fatalRE := regexp.MustCompile(`^\[\s*[0-9]+\.[0-9]+\] berth: FATAL: `)
	powerRE := regexp.MustCompile(`^\[\s*[0-9]+\.[0-9]+\] reboot: Power down$`)
	tests := []struct {
		line         string
		fatal, power bool
	}{
		{"[    2.345678] berth: FATAL: boom", true, false},
		{"[2.3] berth: FATAL: ", true, false},
		{"[\t\f 12.0] berth: FATAL: x", true, false},
		{"[    3.100000] reboot: Power down", false, true},
		{"[    3.100000] reboot: Power down now", false, false},
		{"[    2.] berth: FATAL: x", false, false},
		{"[    .5] berth: FATAL: x", false, false},
		{"[ 1.2.3] berth: FATAL: x", false, false},
		{" [1.2] berth: FATAL: x", false, false},
		{"[1.2]berth: FATAL: x", false, false},
		{"[1.2] berth: fatal: x", false, false},
		{"[\v1.2] berth: FATAL: x", false, false},
		{"", false, false},
	}
	lines := make([]string, 0, 30000+len(tests))
	for _, tt := range tests {
		rest, ok := stamped([]byte(tt.line))
		fatal := ok && bytes.HasPrefix(rest, []byte(berthFatal))
		power := ok && string(rest) == kernelPowerDown
		if fatal != tt.fatal || power != tt.power {
			t.Errorf("%q: fatal %v, power down %v, want %v, %v", tt.line, fatal, power, tt.fatal, tt.power)
		}
		lines = append(lines, tt.line)
	}
	r := rand.New(rand.NewPCG(5, 6))
	const alphabet = "[]. 09\t\nbF:"
	for range 30000 {
		b := []byte(tests[r.IntN(5)].line)
		for range r.IntN(4) {
			if i := r.IntN(len(b)); r.IntN(3) == 0 {
				b = b[:i+1]
			} else {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
		}
		lines = append(lines, string(b))
	}
	for _, line := range lines {
		rest, ok := stamped([]byte(line))
		fatal := ok && bytes.HasPrefix(rest, []byte(berthFatal))
		power := ok && string(rest) == kernelPowerDown
		if fatal != fatalRE.MatchString(line) || power != powerRE.MatchString(line) {
			t.Fatalf("%q: fatal %v, power down %v; the regular expressions say %v, %v", line, fatal, power, fatalRE.MatchString(line), powerRE.MatchString(line))
		}
	}
}
