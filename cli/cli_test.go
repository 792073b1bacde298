package cli

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"berth/internal/testutil"
)

// The CLI tests run the real berth binary, built once, as a user would:
// in the checkout's out/, as make builds it, so that berth vm finds the
// checkout's kernels from any directory.
var berthBin string

func TestMain(m *testing.M) {
	// A test run again in a namespace of its own (testutil.InNetNS)
	// uses the binary its parent built.
	if bin := os.Getenv("BERTH_TEST_BIN"); bin != "" {
		berthBin = bin
		os.Exit(m.Run())
	}
	out := filepath.Join(testutil.RepoRoot(), "out")
	dir, err := os.MkdirTemp(out, "cli-test-")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.Mkdir(out, 0o755); err == nil {
			dir, err = os.MkdirTemp(out, "cli-test-")
		}
	}
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	berthBin = filepath.Join(dir, "berth")
	build := exec.Command("go", "build", "-o", berthBin, "berth")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Printf("build berth: %v\n%s", err, out)
		os.Exit(1)
	}
	os.Setenv("BERTH_TEST_BIN", berthBin)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// berth runs the binary and returns its exit status, stdout and stderr.
func berth(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(berthBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("run berth %v: %v", args, err)
	return 0, "", ""
}

// berthResult is one run of berth: its exit status and output.
type berthResult struct {
	status         int
	stdout, stderr string
}

// berthAsync runs berth on a goroutine of its own, for a verb that waits
// while the test goes on; the channel gets its result.
func berthAsync(t *testing.T, args ...string) <-chan berthResult {
	done := make(chan berthResult, 1)
	go func() {
		status, stdout, stderr := berth(t, args...)
		done <- berthResult{status, stdout, stderr}
	}()
	return done
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	bad := filepath.Join(dir, "bad.toml")
	write(t, good, "[[container]]\nname = \"a\"\nimage = \"a.tar.zst\"\ncommand = [\"/bin/a\"]\n")
	write(t, bad, "[[container]]\nname = \"a\"\nimage = \"a.tar.zst\"\ncommand = [\"/bin/a\"]\ncolor = \"red\"\n[container.limits]\nmemory = \"lots\"\n")
	tests := []struct {
		args   []string
		status int
		stderr []string
	}{
		{[]string{"check", good}, 0, nil},
		{[]string{"check", bad}, 2, []string{bad + ":5: container.color: unknown key", bad + ":7: container.limits.memory: invalid size \"lots\""}},
		{[]string{"check", filepath.Join(dir, "missing.toml")}, 2, []string{"missing.toml"}},
		{[]string{"check"}, 2, []string{"berth check: missing argument\nrun 'berth check -h' for usage"}},
	}
	for _, tc := range tests {
		status, _, stderr := berth(t, tc.args...)
		if status != tc.status {
			t.Errorf("berth %v: status %d, want %d; stderr:\n%s", tc.args, status, tc.status, stderr)
		}
		for _, w := range tc.stderr {
			if !strings.Contains(stderr, w) {
				t.Errorf("berth %v: stderr lacks %q:\n%s", tc.args, w, stderr)
			}
		}
	}
	if _, stdout, stderr := berth(t, "check", good); stdout != good+": ok, 1 container\n" || stderr != "" {
		t.Errorf("berth check %s: %q, stderr %q", good, stdout, stderr)
	}
	// A config without containers is valid, with a note on what it does.
	empty := filepath.Join(dir, "empty.toml")
	write(t, empty, "hostname = \"edge\"\n")
	status, stdout, stderr := berth(t, "check", empty)
	if status != 0 || stdout != empty+": ok, 0 containers\n" || !strings.Contains(stderr, "note: no [[container]]: berth boot ends at once") {
		t.Errorf("berth check %s: status %d, %q, stderr %q", empty, status, stdout, stderr)
	}
}

func TestRunStatuses(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	tests := []struct {
		name   string
		args   []string
		status int
		stdout string
		stderr string
	}{
		{"exit status", []string{"run", rootfs, "--", "sh", "-c", "exit 7"}, 7, "", ""},
		{"hostname and limits", []string{"run", "--memory", "32M", "--pids", "20", "--hostname", "edge", rootfs, "--", "sh", "-c",
			"hostname; cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max"},
			0, "edge\n33554432\n20\n", ""},
		{"out of memory", []string{"run", "--memory", "16M", rootfs, "--", "tail", "/dev/zero"}, 137, "", "killed: out of memory (limit 16 MiB)"},
		{"command not found", []string{"run", rootfs, "--", "no-such-cmd"}, 127, "", "no-such-cmd: not found"},
		{"bad memory flag", []string{"run", "--memory", "lots", rootfs, "--", "true"}, 2, "", "--memory"},
		{"missing rootfs", []string{"run", "/nonexistent", "--", "true"}, 125, "", "/nonexistent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, stdout, stderr := berth(t, tc.args...)
			if status != tc.status {
				t.Errorf("status %d, want %d; stderr:\n%s", status, tc.status, stderr)
			}
			if tc.stdout != "" && stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", stdout, tc.stdout)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr)
			}
		})
	}
}

// TestRunImage packs a rootfs and runs a command straight from the image.
func TestRunImage(t *testing.T) {
	rootfs := testutil.BusyboxRootfs(t)
	img := filepath.Join(t.TempDir(), "bb.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", rootfs, "-o", img); status != 0 {
		t.Fatalf("pack: %d %s", status, stderr)
	}
	status, stdout, stderr := berth(t, "run", img, "--", "sh", "-c", "echo pid=$$ from image")
	if status != 0 || stdout != "pid=1 from image\n" {
		t.Fatalf("status %d stdout %q stderr %s", status, stdout, stderr)
	}
}

// TestUnpackRefusesEscape checks the CLI end to end: an entry climbing out
// of DIR is named in the error and nothing appears outside DIR.
func TestUnpackRefusesEscape(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"ok.txt", "../escaped.txt"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: 2, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte("x\n"))
	}
	tw.Close()
	evil := filepath.Join(dir, "evil.tar")
	write(t, evil, buf.String())
	dest := filepath.Join(dir, "sub", "dest")
	status, _, stderr := berth(t, "image", "unpack", evil, dest)
	if status == 0 || !strings.Contains(stderr, "../escaped.txt") {
		t.Fatalf("status %d, stderr %q: want a failure naming ../escaped.txt", status, stderr)
	}
	for _, p := range []string{filepath.Join(dir, "sub", "escaped.txt"), filepath.Join(dir, "escaped.txt")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was written outside DIR", p)
		}
	}
	// All or nothing: no DIR, and no staging directory left beside it.
	if ents, _ := os.ReadDir(filepath.Join(dir, "sub")); len(ents) != 0 {
		t.Errorf("a failed unpack left %v in %s", ents, filepath.Join(dir, "sub"))
	}
}

// TestBootOnHost runs `berth boot` on this host: the same sequence as PID 1
// minus mounts and reboot.
func TestBootOnHost(t *testing.T) {
	dir := t.TempDir()
	rootfs := testutil.BusyboxRootfs(t)
	img := filepath.Join(dir, "bb.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", rootfs, "-o", img); status != 0 {
		t.Fatalf("pack: %d %s", status, stderr)
	}
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, `[[container]]
name = "one"
image = "bb.tar.zst"
command = ["sh", "-c", "echo hello from $(hostname)"]
log_file = "/proc/berth-no-such-dir/one.log"
[container.limits]
memory = "32M"

[[container]]
name = "two"
image = "bb.tar.zst"
command = ["sh", "-c", "echo PID $$; exit 3"]

[[container]]
name = "broken"
image = "missing.tar.zst"
command = ["true"]
`)
	status, stdout, stderr := berth(t, "boot", "--config", cfg, "--state", filepath.Join(dir, "state"), "--socket", filepath.Join(dir, "berth.sock"))
	if status != 1 {
		t.Errorf("status %d, want 1 (a container failed)", status)
	}
	for _, w := range []string{"one | hello from one", "two | PID 1", "container one exited with status 0",
		"container two exited with status 3", "container broken: image:", "missing.tar.zst", "all containers have ended",
		"warning: container one: log file /proc/berth-no-such-dir/one.log:"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("log lacks %q", w)
		}
	}
	// The time on an exit's line is the container's life, not a timeout.
	if !regexp.MustCompile(`container two exited with status 3, [0-9.]+m?s after its start`).MatchString(stdout) {
		t.Errorf("the exit's line lacks the time since the container's start")
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSeccompWarningOnce: a seccomp profile's unknown system calls are
// warned of once for a container, not at every restart of its crash
// loop.
func TestSeccompWarningOnce(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "bb.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", testutil.BusyboxRootfs(t), "-o", img); status != 0 {
		t.Fatalf("pack: %d %s", status, stderr)
	}
	write(t, filepath.Join(dir, "profile.json"), `{"defaultAction": "SCMP_ACT_ALLOW",
 "syscalls": [{"names": ["no_such_call"], "action": "SCMP_ACT_ERRNO"}]}`)
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, `[[container]]
name = "loop"
image = "bb.tar.zst"
command = ["false"]
seccomp = "`+filepath.Join(dir, "profile.json")+`"
restart = "on-failure"
restart_delay = "0s"
max_restarts = 3
`)
	_, stdout, stderr := berth(t, "boot", "--config", cfg, "--state", filepath.Join(dir, "state"), "--socket", filepath.Join(dir, "berth.sock"))
	if n := strings.Count(stdout, "container loop: warning:"); n != 1 || !strings.Contains(stdout, "no_such_call") {
		t.Errorf("%d warnings naming no_such_call, want 1; stdout:\n%s\nstderr:\n%s", n, stdout, stderr)
	}
	if n := strings.Count(stdout, "container loop started"); n != 4 {
		t.Errorf("%d starts, want 4 (max_restarts = 3); stdout:\n%s", n, stdout)
	}
}
