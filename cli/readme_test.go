package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth/internal/testutil"
)

// The README's examples run here exactly as written:
//
//   - every ```toml block is a whole config that `berth check` accepts; a
//     block whose first line is "# file: NAME" is also written to NAME in
//     the directory where the shell blocks run;
//   - every ```sh block runs as one bash script (set -euo pipefail, at
//     most readmeBlockTimeout) in a fresh
//     directory holding those files, rootfs/ (a busybox root
//     filesystem), app.tar.zst (it, packed) and kernel/ (Debian's arm64
//     kernel package, unpacked), with this berth first on PATH and
//     berth-linux-arm64 beside it. Lines starting with "make " are the
//     Makefile's own targets, which CI runs itself (make test) or
//     TestREADMEMakeDemo runs.
//
// Other fences (```text, ```console) are output, or (```ini) files for
// other programs, not examples.

// readmeBlockTimeout bounds one sh block of the README: the longest
// (berth boot, an update and two rollbacks) takes a few seconds.
const readmeBlockTimeout = 3 * time.Minute

// readmeBlock is one fenced block of README.md.
type readmeBlock struct {
	lang string
	line int // of the opening fence
	body string
}

// readmeBlocks returns the README's fenced blocks.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	for i, l := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(l, "```"):
			cur = &readmeBlock{lang: strings.TrimPrefix(l, "```"), line: i + 1}
		case cur != nil && l == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.body += l + "\n"
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: unclosed fence", cur.line)
	}
	return blocks
}

// TestREADMEConfigs checks every TOML example with berth check.
func TestREADMEConfigs(t *testing.T) {
	n := 0
	for _, b := range readmeBlocks(t) {
		if b.lang != "toml" {
			continue
		}
		n++
		path := filepath.Join(t.TempDir(), "berth.toml")
		if err := os.WriteFile(path, []byte(b.body), 0o644); err != nil {
			t.Fatal(err)
		}
		if status, _, stderr := run(t, "check", path); status != 0 {
			t.Errorf("README.md:%d: berth check: status %d\n%s", b.line, status, stderr)
		}
	}
	if n == 0 {
		t.Fatal("no toml example in README.md")
	}
}

// TestREADMECommands runs every shell example, on a host of its own: the
// bridge example creates berth0 and its nftables table.
func TestREADMECommands(t *testing.T) {
	if !testutil.InNetNS(t) {
		return
	}
	blocks := readmeBlocks(t)
	rootfs := testutil.BusyboxRootfs(t)
	img := filepath.Join(t.TempDir(), "app.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", rootfs, "-o", img); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	arm64 := filepath.Join(filepath.Dir(berthBin), "berth-linux-arm64")
	build := exec.Command("go", "build", "-trimpath", "-o", arm64, "berth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH=arm64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build berth for arm64: %v\n%s", err, out)
	}
	kernel := filepath.Join(testutil.RepoRoot(), ".cache", "deb", "arm64", "linux-image")
	files := map[string]string{}
	for _, b := range blocks {
		if name, ok := strings.CutPrefix(strings.SplitN(b.body, "\n", 2)[0], "# file: "); ok && b.lang == "toml" {
			files[strings.TrimSpace(name)] = b.body
		}
	}
	n := 0
	for _, b := range blocks {
		if b.lang != "sh" {
			continue
		}
		var script []string
		for _, l := range strings.Split(b.body, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "make ") {
				script = append(script, l)
			}
		}
		if strings.TrimSpace(strings.Join(script, "")) == "" {
			continue
		}
		n++
		dir := t.TempDir()
		for name, body := range files {
			write(t, filepath.Join(dir, name), body)
		}
		if out, err := exec.Command("cp", "-a", rootfs, filepath.Join(dir, "rootfs")).CombinedOutput(); err != nil {
			t.Fatalf("cp rootfs: %v %s", err, out)
		}
		if out, err := exec.Command("cp", img, filepath.Join(dir, "app.tar.zst")).CombinedOutput(); err != nil {
			t.Fatalf("cp image: %v %s", err, out)
		}
		if err := os.Symlink(kernel, filepath.Join(dir, "kernel")); err != nil {
			t.Fatal(err)
		}
		// A block that hangs fails on its own, named, instead of ending
		// the whole test binary at go test's timeout.
		ctx, cancel := context.WithTimeout(context.Background(), readmeBlockTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", "set -euo pipefail\n"+strings.Join(script, "\n"))
		// On the bound, the whole block goes: what it started in the
		// background (berth boot, a container) too.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(berthBin)+":"+os.Getenv("PATH"))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("README.md:%d: the sh example failed: %v\n%s\noutput:\n%s", b.line, err, b.body, out.String())
		}
	}
	if n == 0 {
		t.Fatal("no sh example (beyond make) in README.md")
	}
}

// TestREADMEMakeDemo runs `make demo`, the README's first command, as
// written: it builds, fetches what is missing and boots the demo appliance
// in QEMU, which must end in berth's clean power-off.
func TestREADMEMakeDemo(t *testing.T) {
	cmd := exec.Command("make", "demo")
	cmd.Dir = testutil.RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, out)
	}
	// What the README says the console shows: each container's hostname,
	// the limits it reads from its own cgroup (demo/berth.toml's), ps
	// with it as PID 1, the hog OOM-killed at its limit, the power-off.
	for _, w := range []string{
		"web | I am the web server; hostname: web", "web | memory limit from my cgroup: 33554432 bytes", "web | pids limit from my cgroup: 16",
		"sensor | I am the sensor reader; hostname: sensor", "sensor | memory limit from my cgroup: 16777216 bytes", "sensor | pids limit from my cgroup: 8",
		"web | processes I can see (I am PID 1):", "container hog killed: out of memory (limit 24 MiB)",
		"berth: all containers have ended", "berth: power off", "reboot: Power down",
	} {
		if !bytes.Contains(out, []byte(w)) {
			t.Errorf("make demo's output lacks %q:\n%s", w, out)
		}
	}
}
