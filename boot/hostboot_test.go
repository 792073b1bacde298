package boot

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth/image"
	"berth/internal/busybox"
	"berth/internal/testutil"
)

// hostBoot is berth boot running in this process on this host (root
// only), for tests that need real containers: its console, its control
// socket, the busybox image its config names as IMAGE, a directory of
// the host its config names as SHARED and its state directory, named
// STATEDIR.
type hostBoot struct {
	t       *testing.T
	sock    string
	shared  string
	state   string
	console *lockedBuffer
}

// startHostBoot packs a busybox image, with files (path in the image →
// content) and the Go programs of programs (path in the image → package)
// built into it, writes cfg (IMAGE, SHARED and STATEDIR replaced) and starts berth
// boot on it; it powers off at the test's end.
func startHostBoot(t *testing.T, cfg string, files, programs map[string]string) *hostBoot {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("berth boot needs root: namespaces, mounts and cgroups are real")
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	if err := busybox.Rootfs(testutil.RepoRoot(), runtime.GOARCH, rootfs, files); err != nil {
		t.Fatal(err)
	}
	for path, pkg := range programs {
		build := exec.Command("go", "build", "-o", filepath.Join(rootfs, path), pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	img := filepath.Join(dir, "bb.tar.zst")
	if err := image.Pack(rootfs, img, image.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	h := &hostBoot{t: t, sock: filepath.Join(dir, "berth.sock"), shared: filepath.Join(dir, "shared"), console: &lockedBuffer{}}
	if err := os.Mkdir(h.shared, 0o777); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "berth.toml")
	h.state = filepath.Join(dir, "state")
	cfg = strings.NewReplacer("IMAGE", img, "SHARED", h.shared, "STATEDIR", h.state).Replace(cfg)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		done <- Main(Options{ConfigPath: cfgPath, StateDir: h.state, Socket: h.sock, Console: h.console})
	}()
	t.Cleanup(func() {
		_ = Call(h.sock, Request{Verb: "poweroff"}, func(Response) error { return nil })
		select {
		case <-done:
		case <-time.After(time.Minute): // a hang guard
			t.Errorf("berth boot did not power off")
		}
		if t.Failed() {
			t.Logf("berth boot:\n%s", h.console.String())
		}
	})
	return h
}

// ps returns each container's row, by name.
func (h *hostBoot) ps() map[string]Process {
	m := map[string]Process{}
	_ = Call(h.sock, Request{Verb: "ps"}, func(r Response) error {
		for _, p := range r.Processes {
			m[p.Name] = p
		}
		return nil
	})
	return m
}

// health returns name's health as berth status shows it.
func (h *hostBoot) health(name string) HealthInfo {
	var info HealthInfo
	_ = Call(h.sock, Request{Verb: "status"}, func(r Response) error {
		if r.Status != nil {
			for _, i := range r.Status.Health {
				if i.Container == name {
					info = i
				}
			}
		}
		return nil
	})
	return info
}

// logs returns the lines of name's log ring.
func (h *hostBoot) logs(name string) []string {
	var lines []string
	_ = Call(h.sock, Request{Verb: "logs", Name: name}, func(r Response) error {
		for _, l := range r.Lines {
			lines = append(lines, l.Text)
		}
		return nil
	})
	return lines
}

// waitFor polls until ok holds; the limit is a hang guard, not a
// timing check.
func (h *hostBoot) waitFor(what string, limit time.Duration, ok func() bool) {
	h.t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out (%s) waiting for %s", limit, what)
		}
	}
}

// processesRunning lists the pids of the processes whose command line
// is args, wherever they run.
func processesRunning(args ...string) []int {
	want := strings.Join(args, "\x00") + "\x00"
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cmdline, err := os.ReadFile(d + "/cmdline")
		if err != nil || string(cmdline) != want {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(d)); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
