package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"berth/internal/testutil"
)

// appLayout builds an OCI image layout with umoci, as a registry pull
// (skopeo copy) would leave one: the busybox rootfs with a user "app"
// (1000, primary group 1000, also in "staff"), /srv, and a config with
// an entrypoint, a command, an environment, a working directory, a user
// by name and a stop signal.
func appLayout(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("umoci"); err != nil {
		t.Fatal("umoci is not installed: make host-deps installs it")
	}
	rootfs := testutil.BusyboxRootfs(t)
	write(t, filepath.Join(rootfs, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/srv:/bin/sh\n")
	write(t, filepath.Join(rootfs, "etc/group"), "root:x:0:\nstaff:x:50:app\napp:x:1000:\n")
	if err := os.Mkdir(filepath.Join(rootfs, "srv"), 0o755); err != nil {
		t.Fatal(err)
	}
	layout := filepath.Join(t.TempDir(), "layout")
	for _, args := range [][]string{
		{"init", "--layout", layout},
		{"new", "--image", layout + ":app"},
		{"insert", "--image", layout + ":app", rootfs, "/"},
		{"config", "--image", layout + ":app", "--config.entrypoint", "/bin/sh", "--config.entrypoint", "-c",
			"--config.cmd", `echo "$GREETING from $(pwd) as $(id -u):$(id -g) in $(id -G) PATH=$PATH"`,
			"--config.env", "GREETING=image", "--config.env", "PATH=/bin", "--config.env", "KEEP=1",
			"--config.workingdir", "/srv", "--config.user", "app", "--config.stopsignal", "SIGUSR1"},
	} {
		if out, err := exec.Command("umoci", args...).CombinedOutput(); err != nil {
			t.Fatalf("umoci %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return layout
}

// TestRunImageDefaults runs an image's command as docker would: with no
// command its Entrypoint and Cmd, a command replacing Cmd only, its Env
// under the flags', its WorkingDir and its User by name, from the OCI
// layout itself and from the berth image packed from it.
func TestRunImageDefaults(t *testing.T) {
	layout := appLayout(t)
	img := filepath.Join(t.TempDir(), "app.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", layout+":app", "-o", img); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	rootfs := testutil.BusyboxRootfs(t)
	plain := filepath.Join(t.TempDir(), "plain.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", rootfs, "-o", plain); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	const dflt = "image from /srv as 1000:1000 in 1000 50 PATH=/bin\n"
	cases := []struct {
		name   string
		args   []string
		status int
		stdout string
		stderr string
	}{
		{"berth image, no command", []string{img}, 0, dflt, ""},
		{"OCI layout, no command", []string{layout + ":app"}, 0, dflt, ""},
		{"command replaces Cmd, not Entrypoint", []string{"--env", "GREETING=flag", img, "echo $GREETING $KEEP"}, 0, "flag 1\n", ""},
		{"entrypoint replaced", []string{"--entrypoint", "/bin/echo", img, "hi"}, 0, "hi\n", ""},
		{"entrypoint replaced drops Cmd", []string{"--entrypoint", "/bin/pwd", img}, 0, "/srv\n", ""},
		// README: --entrypoint "" for none: the command runs as given,
		// not as an argument of the image's sh -c; with none, nothing is left.
		{"no entrypoint", []string{"--entrypoint", "", img, "echo", "$KEEP"}, 0, "$KEEP\n", ""},
		{"no entrypoint drops Cmd", []string{"--entrypoint", "", img}, 125, "", "no command: none is given and the image names none"},
		{"user and workdir flags win", []string{"--user", "0", "--workdir", "/", img, "echo $(id -u) $(pwd)"}, 0, "0 /\n", ""},
		{"image without a command", []string{plain}, 125, "", "no command: none is given and the image names none"},
		{"directory without a command", []string{rootfs}, 2, "", "missing CMD"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, stdout, stderr := berth(t, append([]string{"run"}, c.args...)...)
			if status != c.status || stdout != c.stdout || !strings.Contains(stderr, c.stderr) {
				t.Fatalf("status %d stdout %q stderr %q; want %d %q %q", status, stdout, stderr, c.status, c.stdout, c.stderr)
			}
		})
	}
}

// TestBootImageDefaults boots a [[container]] without a command, which
// runs its image's, and stops it with the image's StopSignal.
func TestBootImageDefaults(t *testing.T) {
	layout := appLayout(t)
	if out, err := exec.Command("umoci", "config", "--image", layout+":app", "--config.cmd",
		`trap 'echo got USR1; exit 0' USR1; echo "$GREETING as $(id -un) in $(pwd)"; while :; do sleep 0.05; done`).CombinedOutput(); err != nil {
		t.Fatalf("umoci config: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if status, _, stderr := berth(t, "image", "pack", layout+":app", "-o", filepath.Join(dir, "app.tar.zst")); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	cfg := filepath.Join(dir, "berth.toml")
	write(t, cfg, "[[container]]\nname = \"app\"\nimage = \"app.tar.zst\"\nenv = [\"GREETING=config\"]\nstop_timeout = \"1m\"\n")
	if status, _, stderr := berth(t, "check", cfg); status != 0 {
		t.Fatalf("check: %s", stderr)
	}
	log, cmd := bootInDir(t, dir, cfg)
	waitFor(t, "app to print", log, func() bool { return strings.Contains(log.String(), "app | config as app in /srv") })
	if status, stdout, stderr := berth(t, "stop", "app"); status != 0 || !strings.Contains(stdout, "stopped app (status 0)") {
		t.Fatalf("stop: %d %q %s\n%s", status, stdout, stderr, log.String())
	}
	// The console is written from a queue of its own: its lines may
	// come after berth stop's answer.
	waitFor(t, "app stopped with its image's StopSignal", log, func() bool {
		return strings.Contains(log.String(), "app | got USR1") && strings.Contains(log.String(), "stopping container app (SIGUSR1")
	})
	cmd.Process.Signal(syscall.SIGTERM) // berth boot unmounts the rootfs as it ends
	cmd.Wait()
}
