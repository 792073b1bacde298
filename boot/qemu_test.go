package boot_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hugelgupf/vmtest/qemu"

	"berth/image"
	"berth/internal/testutil"
	"berth/internal/vm"
)

// appliance is a test appliance: a config, Go programs to build into the
// busybox image (rootfs path -> package), and QEMU settings.
type appliance struct {
	arch     string
	config   string
	programs map[string]string
	files    map[string]string // more files in the image: path -> content
	image    string            // a berth image to boot instead of the one built from files
	modules  []string          // kernel modules in the initramfs (nil: overlay)
	vm       vm.Config
	// until, when set, ends the boot once the console shows it: for a
	// machine that cannot power itself off.
	until  string
	serial io.Writer         // also gets the console as it arrives, if set
	initrd map[string]string // more files in the initramfs: path -> content
	// kill, when closed, kills QEMU (SIGKILL): the machine loses power.
	kill <-chan struct{}
}

// bootAppliance builds berth for the arch, packs a busybox image with the
// demo script and the programs (unless a.image names one), boots an
// initramfs holding them and the config, and returns the console output
// once QEMU has exited.
func bootAppliance(t *testing.T, a appliance) (string, error) {
	t.Helper()
	repo := testutil.RepoRoot()
	kernel, err := vm.Kernel(repo, a.arch)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	berth, err := vm.BuildBerth(repo, a.arch, dir)
	if err != nil {
		t.Fatal(err)
	}
	img := a.image
	if img == "" {
		img = demoImage(t, a, dir)
	}
	cfgPath := filepath.Join(dir, "berth.toml")
	if err := os.WriteFile(cfgPath, []byte(a.config), 0o644); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(dir, "initramfs.cpio")
	app := vm.Appliance{Berth: berth, Config: cfgPath, Images: map[string]string{"demo.tar.zst": img}, Files: a.initrd}
	mods := a.modules
	if mods == nil {
		mods = []string{"overlay"} // containers' writable layers over the image cache
	}
	if len(mods) > 0 {
		if app.Modules, err = vm.Modules(repo, a.arch, mods); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Write(initrd); err != nil {
		t.Fatal(err)
	}
	cfg := a.vm
	cfg.Arch, cfg.Kernel, cfg.Initramfs = a.arch, kernel, initrd
	var out syncBuffer
	serial := []io.WriteCloser{&out}
	if a.serial != nil {
		serial = append(serial, nopCloser{a.serial})
	}
	v, err := qemu.Start(vm.QEMUArch(a.arch), append(cfg.Options(), qemu.WithSerialOutput(serial...))...)
	if err != nil {
		t.Fatal(err)
	}
	if a.until != "" {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for !strings.Contains(out.String(), a.until) {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
			_ = v.Kill()
		}()
	}
	if a.kill != nil {
		exited := make(chan struct{})
		defer close(exited)
		go func() {
			select {
			case <-a.kill:
				_ = v.Kill()
			case <-exited:
			}
		}()
	}
	err = v.Wait()
	if a.until != "" && strings.Contains(out.String(), a.until) {
		err = nil
	}
	return out.String(), err
}

// demoImage packs a busybox image with the demo script, a's files and
// a's programs into dir.
func demoImage(t *testing.T, a appliance, dir string) string {
	t.Helper()
	repo := testutil.RepoRoot()
	show, err := os.ReadFile(filepath.Join(repo, "demo", "show.sh"))
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	files := map[string]string{"demo/show.sh": string(show)}
	for k, v := range a.files {
		files[k] = v
	}
	if err := vm.BusyboxRootfs(repo, a.arch, rootfs, files); err != nil {
		t.Fatal(err)
	}
	for path, pkg := range a.programs {
		if err := vm.BuildGo(repo, pkg, a.arch, filepath.Join(rootfs, path)); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "demo.tar.zst")
	if err := image.Pack(rootfs, img, image.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	return img
}

// wantLines checks that the console holds each line (substring) and no
// sign of a crash, and logs the console when something is missing.
func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("console lacks %q", w)
		}
	}
	for _, bad := range []string{"Kernel panic", "FATAL", "panic:"} {
		if strings.Contains(out, bad) {
			t.Errorf("console shows %q", bad)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s", out)
	}
}

// TestQEMUDemoAppliance boots the demo config on each architecture and
// checks what a user watching the console would: every container ran and
// saw its own limits, the memory hog was OOM-killed and reported, and
// berth powered the machine off cleanly.
func TestQEMUDemoAppliance(t *testing.T) {
	config, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "demo", "berth.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			t.Parallel()
			out, err := bootAppliance(t, appliance{arch: arch, config: string(config)})
			if err != nil {
				t.Errorf("QEMU did not exit cleanly: %v", err)
			}
			demoChecks(t, out)
			logTimes(t, out)
			if t.Failed() {
				t.Logf("console:\n%s", out)
			}
		})
	}
}

// demoChecks are what the demo config shows on the console.
func demoChecks(t *testing.T, out string) {
	t.Helper()
	want := []string{
		"berth: cgroups: v2 at /sys/fs/cgroup",
		"web | I am the web server; hostname: web",
		"web | memory limit from my cgroup: 33554432 bytes",
		"web | pids limit from my cgroup: 16",
		"sensor | memory limit from my cgroup: 16777216 bytes",
		"container hog killed: out of memory (limit 24 MiB)",
		"container web exited with status 0",
		"container sensor exited with status 0",
		"berth: all containers have ended",
		"berth: power off",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("console lacks %q", w)
		}
	}
	// Each container is PID 1 of its own PID namespace.
	if n := len(regexp.MustCompile(`(web|sensor) \|\s+1 root\s+/bin/sh /demo/show.sh`).FindAllString(out, -1)); n != 2 {
		t.Errorf("ps shows the script as PID 1 in %d containers, want 2", n)
	}
	for _, bad := range []string{"Kernel panic", "FATAL", "panic:"} {
		if strings.Contains(out, bad) {
			t.Errorf("console shows %q", bad)
		}
	}
}

// TestQEMUBrokenConfig boots a config with an error: berth prints it with
// file, line and key on the console and ends in the berth.panic action —
// by default a reboot after 10 s, here also poweroff — and the kernel
// does not panic.
func TestQEMUBrokenConfig(t *testing.T) {
	const config = "hostname = \"x\"\n[[container]]\nname = \"a\"\nimage = \"/images/demo.tar.zst\"\ncommand = [\"true\"]\n[container.limits]\nmemory = \"lots\"\n"
	tests := []struct {
		name   string
		append []string
		want   []string
	}{
		{"default: reboot after 10s", nil, []string{"berth: reboot in 10s (berth.panic)", "berth: reboot"}},
		{"berth.panic=poweroff", []string{"berth.panic=poweroff"}, []string{"berth: power off"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, err := bootAppliance(t, appliance{arch: "amd64", config: config, vm: vm.Config{Append: tc.append}})
			if err != nil {
				t.Errorf("QEMU did not exit cleanly: %v", err)
			}
			want := append([]string{`/etc/berth.toml:7: container.limits.memory: invalid size "lots"`}, tc.want...)
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("console lacks %q", w)
				}
			}
			if strings.Contains(out, "Kernel panic") {
				t.Error("kernel panicked")
			}
			if t.Failed() {
				t.Logf("console:\n%s", out)
			}
		})
	}
}

// logTimes reports berth's start and the first container output line, as
// stamped (CLOCK_BOOTTIME, as /proc/uptime) in the console log.
func logTimes(t *testing.T, out string) {
	stamp := regexp.MustCompile(`(?m)^\[\s*([0-9.]+)\] (.*)$`)
	var start, first float64
	for _, m := range stamp.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		if start == 0 && strings.HasPrefix(m[2], "berth: berth ") {
			start = v
		}
		if first == 0 && strings.Contains(m[2], " | ") && !strings.HasPrefix(m[2], "berth:") {
			first = v
		}
	}
	t.Logf("berth started at %.3fs after kernel start; first container output at %.3fs (%.0f ms later)", start, first, (first-start)*1000)
}

// nopCloser is a writer whose Close does nothing.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// syncBuffer is a bytes.Buffer safe for QEMU's writer goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Close() error { return nil }

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
