package busybox

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestAppletNames reads the applet table of each architecture's busybox
// and compares it with what the binary itself lists when it can run here:
// natively on the host's architecture, and under qemu-user (Debian's
// qemu-user-static) for the others when that is installed.
func TestAppletNames(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64", "arm", "riscv64"} {
		t.Run(arch, func(t *testing.T) {
			bb, err := Find(repoRoot(), arch)
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(bb)
			if err != nil {
				t.Fatal(err)
			}
			got, err := appletNames(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []string{"sh", "ps", "cat", "mknod", "tail", "hostname"} {
				if !slices.Contains(got, w) {
					t.Errorf("applets lack %q: %v", w, got)
				}
			}
			var cmd *exec.Cmd
			switch user := map[string]string{"arm64": "qemu-aarch64-static", "arm": "qemu-arm-static", "riscv64": "qemu-riscv64-static"}[arch]; {
			case arch == runtime.GOARCH:
				cmd = exec.Command(bb, "--list")
			case user != "":
				if _, err := exec.LookPath(user); err != nil {
					return
				}
				cmd = exec.Command(user, bb, "--list")
			default:
				return
			}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			if want := strings.Fields(string(out)); !slices.Equal(got, want) {
				t.Errorf("applet table:\n%v\nbusybox --list:\n%v", got, want)
			}
		})
	}
}

func TestAppletNamesBroken(t *testing.T) {
	for _, in := range []string{"", "no table here", "[\x00[[\x00acpid\x00\x00"} {
		if names, err := appletNames([]byte(in)); err == nil {
			t.Errorf("%q: got %v, want an error", in, names)
		}
	}
}
