package boot

import (
	"syscall"
	"testing"
)

// TestSignalNames: the real-time signals' names, as an image's StopSignal
// (systemd's "SIGRTMIN+3", which docker takes, failed only under berth
// boot) and as the config's stop_signal, numbered as docker does
// (SIGRTMIN 34) up to SIGRTMAX (64), and refused past either end, naming
// the key.
func TestSignalNames(t *testing.T) {
	const past = `is past SIGRTMAX: real-time signals go from SIGRTMIN (34) to SIGRTMAX (64)`
	const below = `is below SIGRTMIN: real-time signals go from SIGRTMIN (34) to SIGRTMAX (64)`
	tests := []struct {
		name string
		sig  syscall.Signal // 0: refused
		err  string         // the error after the quoted name
	}{
		{"SIGTERM", syscall.SIGTERM, ""},
		{"quit", syscall.SIGQUIT, ""},
		{"SIGRTMIN", 34, ""},
		{"SIGRTMIN+3", 37, ""},
		{"RTMIN+3", 37, ""},
		{"sigrtmin+3", 37, ""},
		{"SIGRTMIN+0", 34, ""},
		{"SIGRTMAX", 64, ""},
		{"RTMAX", 64, ""},
		{"SIGRTMAX-1", 63, ""},
		{"SIGRTMAX-30", 34, ""},
		{"SIGRTMIN+30", 64, ""},
		{"SIGRTMIN+31", 0, past},
		{"SIGRTMAX+1", 0, past},
		{"SIGRTMIN+99999999999999999999", 0, past},
		{"SIGRTMIN-1", 0, below},
		{"SIGRTMAX-31", 0, below},
		{"SIGRTMIN+", 0, "unknown"},
		{"SIGRTMIN+-3", 0, "unknown"},
		{"SIGRTMIN 3", 0, "unknown"},
		{"SIGRTMIN+3x", 0, "unknown"},
		{"SIGRTMINX", 0, "unknown"},
		{"SIGNOPE", 0, "unknown"},
	}
	for _, tc := range tests {
		sig, err := ImageStopSignal(tc.name)
		q := `"` + tc.name + `"`
		switch {
		case tc.sig != 0 && (err != nil || sig != tc.sig):
			t.Errorf("StopSignal %s: %d, %v; want %d", q, sig, err, tc.sig)
		case tc.err == "unknown" && (err == nil || err.Error() != "the image's StopSignal "+q+": unknown signal"):
			t.Errorf("StopSignal %s: error %v, want it unknown", q, err)
		case tc.sig == 0 && tc.err != "unknown" && (err == nil || err.Error() != "the image's StopSignal "+q+" "+tc.err):
			t.Errorf("StopSignal %s: error %v, want %q", q, err, tc.err)
		}

		cfg, err := ParseConfig("e.toml", []byte(containerWith("stop_signal = "+q)))
		want := "e.toml:5: container.stop_signal: " + q + " " + tc.err
		if tc.err == "unknown" {
			want = "e.toml:5: container.stop_signal: unknown signal " + q + `: want a name such as "SIGTERM", "INT" or "SIGRTMIN+3"`
		}
		switch {
		case tc.sig != 0 && err != nil:
			t.Errorf("stop_signal = %s: %v", q, err)
		case tc.sig != 0:
			if s := cfg.Container[0].supervision(func(string, string, ...any) {}); s.stopSignal != tc.sig {
				t.Errorf("stop_signal = %s: %d, want %d", q, s.stopSignal, tc.sig)
			}
		case err == nil || err.Error() != want:
			t.Errorf("stop_signal = %s: error %v, want %q", q, err, want)
		}
	}
	for sig, name := range map[syscall.Signal]string{15: "SIGTERM", 34: "SIGRTMIN", 37: "SIGRTMIN+3", 63: "SIGRTMIN+29", 64: "SIGRTMAX", 65: "signal 65"} {
		if got := signalName(sig); got != name {
			t.Errorf("signalName(%d) = %q, want %q", int(sig), got, name)
		}
	}
}
