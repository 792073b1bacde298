package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"berth/image/registry/registrytest"
	"berth/internal/testutil"
)

// bootPullConfig has a container with an image file and one whose image
// is in the registry at HOST.
const bootPullConfig = `
[registries."HOST"]
insecure = true

[[container]]
name = "local"
image = "bb.tar.zst"
command = ["sleep", "1000"]
stop_timeout = "1s"
env = ["ROUND=ROUNDNO"]

[[container]]
name = "app"
image = "docker://HOST/fleet/app:v1"
command = ["sh", "-c", "echo app runs $(cat /version); exec sleep 1000"]
stop_timeout = "1s"
`

// TestBootPull runs berth boot with a registry image while the registry
// is down: the container with an image file runs, the other waits and
// berth ps says for what; a reload meanwhile neither blocks nor loses
// the pull; once the registry is up the image (pushed with berth image
// push) is pulled and its container runs. After the boot, berth image gc
// with the config keeps the tree the reference was pulled as.
func TestBootPull(t *testing.T) {
	dir := t.TempDir()
	rootfs := testutil.BusyboxRootfs(t)
	local := filepath.Join(dir, "bb.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", rootfs, "-o", local); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	write(t, filepath.Join(rootfs, "version"), "v1 from the registry\n")
	pushed := filepath.Join(dir, "app.tar.zst")
	if status, _, stderr := berth(t, "image", "pack", rootfs, "-o", pushed); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	reg := registrytest.Start(t, registrytest.Options{})
	ref := "docker://" + reg.Host + "/fleet/app:v1"
	if status, _, stderr := berth(t, "image", "push", "--insecure", pushed, ref); status != 0 {
		t.Fatalf("push: %s\n%s", stderr, reg.Log)
	}
	reg.Stop()

	cfg, state, sock := filepath.Join(dir, "berth.toml"), filepath.Join(dir, "state"), filepath.Join(dir, "berth.sock")
	config := strings.ReplaceAll(bootPullConfig, "HOST", reg.Host)
	write(t, cfg, strings.ReplaceAll(config, "ROUNDNO", "1"))
	t.Setenv("BERTH_SOCKET", sock)
	log := &bootLog{}
	cmd := exec.Command(berthBin, "boot", "--config", cfg, "--state", state, "--socket", sock)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("berth boot:\n%s", log.String())
		}
	})
	h := &healthBoot{t: t, log: log}
	wait := "waiting for its image (registry " + reg.Host + ": "
	waitFor(t, "app to wait for the registry", log, func() bool {
		ps := h.ps()
		return ps["local"].State == "running" && ps["app"].State == "waiting" && strings.Contains(ps["app"].Detail, wait)
	})
	if d := h.ps()["app"].Detail; !strings.Contains(d, "; retry in ") {
		t.Errorf("app's detail %q does not say when it tries again", d)
	}

	// A reload while the pull waits: local is replaced, app waits on.
	write(t, cfg, strings.ReplaceAll(config, "ROUNDNO", "2"))
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload", log, func() bool { return strings.Contains(log.String(), "config reloaded: changed [local app]") })
	waitFor(t, "local to run again", log, func() bool { return h.ps()["local"].State == "running" })
	if ps := h.ps()["app"]; ps.State != "waiting" || !strings.Contains(ps.Detail, "waiting for its image") {
		t.Errorf("app after the reload: %s (%s)", ps.State, ps.Detail)
	}

	reg.Start() // the same port and storage
	waitFor(t, "app to run on the pulled image", log, func() bool {
		return h.ps()["app"].State == "running" && strings.Contains(log.String(), "app | app runs v1 from the registry")
	})
	stop()

	// berth image gc keeps what the config's reference was pulled as,
	// and the image file's tree; nothing else was there to remove.
	status, stdout, stderr := berth(t, "image", "gc", "--config", cfg, "--cache", filepath.Join(state, "images"))
	if status != 0 || stdout != "" || !strings.Contains(stderr, "nothing to remove, kept 2 trees") {
		t.Errorf("image gc: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(state, "images", ".refs")); err != nil {
		t.Errorf("no reference memo: %v", err)
	}
}
