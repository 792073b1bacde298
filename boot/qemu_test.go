package boot_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	appl "berth/appliance"
	"berth/image"
	"berth/internal/busybox"
	"berth/internal/testutil"
	"berth/internal/vm"
)

// appliance is a test appliance: a config, Go programs to build into the
// busybox image (rootfs path -> package), and QEMU settings. It boots as
// berth vm boots a config: built by package appliance — the config's
// image is /images/demo.tar.zst — with the modules it loads (modules
// overrides them) from the kernel's package.
type appliance struct {
	arch     string
	config   string
	programs map[string]string
	files    map[string]string // more files in the image: path -> content
	image    string            // a berth image to boot instead of the one built from files
	modules  []string          // kernel modules in the initramfs (nil: what the config needs)
	vm       vm.Config
	// until, when set, ends the boot once the console shows it: for a
	// machine that cannot power itself off.
	until  string
	serial io.Writer         // also gets the console as it arrives, if set
	initrd map[string]string // more files in the initramfs: path -> content
	// kill, when closed, kills QEMU (SIGKILL): the machine loses power.
	kill <-chan struct{}
	// ends is how the boot must end, as berth vm tells: "" a clean
	// power-off (berth vm's status 0), "reset" a reboot or a watchdog
	// reset, "fatal" a fatal error of berth, "any" however it ends.
	ends string
}

// bootAppliance builds berth for the arch, packs a busybox image with the
// demo script and the programs (unless a.image names one), boots an
// initramfs holding them and the config, and returns the console output
// once QEMU has exited. The error says QEMU failed, timed out, or the boot
// did not end as a.ends says.
func bootAppliance(t *testing.T, a appliance) (string, error) {
	t.Helper()
	repo := testutil.RepoRoot()
	kernel, err := appl.Kernel(repo, a.arch)
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
		img = filepath.Join(dir, "demo.tar.zst")
		if err := packDemoImage(repo, a, filepath.Join(dir, "rootfs"), img); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "berth.toml")
	if err := os.WriteFile(cfgPath, []byte(a.config), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := appl.Spec{Config: cfgPath, Arch: a.arch, Berth: berth, Modules: a.modules,
		Files: map[string]string{"/images/demo.tar.zst": img}}
	for name, content := range a.initrd {
		host := filepath.Join(dir, "initrd", name)
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(host, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		spec.Files["/"+name] = host
	}
	cfg := a.vm
	cfg.Arch, cfg.Kernel, cfg.Initramfs, cfg.Kill = a.arch, kernel, filepath.Join(dir, "initramfs.cpio.zst"), a.kill
	if err := vm.Initramfs(spec, kernel, cfg.Initramfs); err != nil {
		t.Fatal(err)
	}
	out, exit, err := cfg.Boot(a.serial, a.until)
	if err != nil || a.until != "" {
		return out, err
	}
	switch {
	case a.ends == "" && !exit.PoweredOff(),
		a.ends == "reset" && (exit.Reason != "guest-reset" || exit.Panic != "" || exit.Fatal != ""),
		a.ends == "fatal" && exit.Fatal == "":
		return out, fmt.Errorf("the boot did not end as it should (%q): %s", a.ends, exit)
	}
	return out, nil
}

// packDemoImage packs the busybox image of a: the demo script, a.files
// and a.programs built for a.arch.
func packDemoImage(repo string, a appliance, rootfs, img string) error {
	show, err := os.ReadFile(filepath.Join(repo, "demo", "show.sh"))
	if err != nil {
		return err
	}
	files := map[string]string{"demo/show.sh": string(show)}
	for k, v := range a.files {
		files[k] = v
	}
	if err := busybox.Rootfs(repo, a.arch, rootfs, files); err != nil {
		return err
	}
	for path, pkg := range a.programs {
		if err := vm.BuildGo(repo, pkg, a.arch, filepath.Join(rootfs, path)); err != nil {
			return err
		}
	}
	return image.Pack(rootfs, img, image.PackOptions{})
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

// TestQEMURamfsRoot boots the demo config with root= on the kernel
// command line, as a Raspberry Pi's cmdline.txt often has: the kernel's
// rootfs is then a ramfs, which reports no free space and keeps no
// extended attributes. berth still runs /init from it, keeps its state on
// a tmpfs of its own, and every container runs as on a tmpfs root. The
// command line also ends in "-- __container-init version", which the
// kernel passes to init as its arguments: berth boots all the same (a CLI
// verb run as PID 1 would exit, and the kernel panic; "__container-init"
// was taken for a container's init, which exited 125 without its pipes).
func TestQEMURamfsRoot(t *testing.T) {
	config, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "demo", "berth.toml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := bootAppliance(t, appliance{arch: "amd64", config: string(config), vm: vm.Config{Append: []string{"root=/dev/ram0", "--", "__container-init", "version"}}})
	if err != nil {
		t.Errorf("QEMU did not exit cleanly: %v", err)
	}
	demoChecks(t, out)
	if !regexp.MustCompile(`berth: mounted \[.* /var/lib/berth\]`).MatchString(out) {
		t.Error("console lacks the tmpfs at /var/lib/berth in berth's mounted line")
	}
	if t.Failed() {
		t.Logf("console:\n%s", out)
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
	// The initramfs has overlayfs, which each container's rootfs waits
	// for while the modules load beside the boot.
	for _, bad := range []string{"Kernel panic", "FATAL", "panic:", "containers get private copies of their images"} {
		if strings.Contains(out, bad) {
			t.Errorf("console shows %q", bad)
		}
	}
}

// TestQEMUBrokenConfig boots a config with an error, named on the kernel
// command line (berth.config=; berth initramfs refuses to build one):
// berth prints it with file, line and key on the console and ends in the
// berth.panic action — by default a reboot after 10 s, here also
// poweroff, which berth vm still reports as a failure — and the kernel
// does not panic.
func TestQEMUBrokenConfig(t *testing.T) {
	const valid = "hostname = \"x\"\n[[container]]\nname = \"a\"\nimage = \"/images/demo.tar.zst\"\ncommand = [\"true\"]\n"
	const broken = valid + "[container.limits]\nmemory = \"lots\"\n"
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
			out, err := bootAppliance(t, appliance{arch: "amd64", config: valid, initrd: map[string]string{"etc/broken.toml": broken},
				vm: vm.Config{Append: append([]string{"berth.config=/etc/broken.toml"}, tc.append...)}, ends: "fatal"})
			if err != nil {
				t.Errorf("QEMU did not exit as it should: %v", err)
			}
			want := append([]string{`/etc/broken.toml:7: container.limits.memory: invalid size "lots"`}, tc.want...)
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
