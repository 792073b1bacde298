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
[update]
grace_period = "1s"

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
// berth ps says for what; a reload meanwhile is refused (its phase 1
// cannot pull) and neither blocks nor loses the pull; once the registry
// is up the image (pushed with berth image push) is pulled and its
// container runs, and a reload then commits a generation with the tag
// resolved. After the boot, berth image gc with the config keeps the tree
// the reference was pulled as; the next boot, the registry down, runs
// app from the cache as its generation resolved it.
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

	// A reload while the pull waits: its phase 1 cannot pull app's image,
	// so it is refused and nothing changes; app's pull goes on.
	write(t, cfg, strings.ReplaceAll(config, "ROUNDNO", "2"))
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload to be refused", log, func() bool {
		return strings.Contains(log.String(), "update: reload refused, nothing changed: container app: image: registry "+reg.Host)
	})
	if ps := h.ps(); ps["local"].State != "running" || ps["local"].Restarts != 0 || ps["app"].State != "waiting" || !strings.Contains(ps["app"].Detail, wait) {
		t.Errorf("after the refused reload: local %s, app %s (%s)", ps["local"].State, ps["app"].State, ps["app"].Detail)
	}

	reg.Start() // the same port and storage
	waitFor(t, "app to run on the pulled image", log, func() bool {
		return h.ps()["app"].State == "running" && strings.Contains(log.String(), "app | app runs v1 from the registry")
	})

	// Now the reload resolves app's tag to the digest it had and commits.
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload to commit", log, func() bool { return strings.Contains(log.String(), "update: generation 2 committed") })
	if !strings.Contains(log.String(), "update: image "+ref+" for app: ") {
		t.Errorf("the reload did not resolve app's image")
	}
	waitFor(t, "app to run", log, func() bool { return h.ps()["app"].State == "running" })
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

	// The next boot, with the registry down, runs the committed
	// generation's app from the cache: its tag was resolved once, for
	// the generation, and no registry is asked.
	reg.Stop()
	l := bootAppRuns(t, cfg, state, sock, "app to run from the cache")
	if !strings.Contains(l, "the registry is not asked") || strings.Contains(l, "waiting for its image") {
		t.Errorf("the second boot asked the registry or waited for it")
	}

	// app's tree as an older berth would have left it (no format file):
	// with the registry down it runs from that tree; with the registry up
	// it is pulled again and its tree replaced.
	tree := registryTree(t, filepath.Join(state, "images"), "v1 from the registry\n")
	if err := os.Remove(filepath.Join(filepath.Dir(tree), "format")); err != nil {
		t.Fatal(err)
	}
	for _, regUp := range []bool{false, true} {
		want := "unpacked by an older berth, is in the cache: using it"
		if regUp {
			reg.Start()
			want = "pulled from " + reg.Host
		}
		if l := bootAppRuns(t, cfg, state, sock, "app to run over an older tree"); !strings.Contains(l, want) {
			t.Errorf("boot over an older tree, registry up %v: no %q in\n%s", regUp, want, l)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(tree), "format")); (err == nil) != regUp {
			t.Errorf("registry up %v: the tree's format file: %v", regUp, err)
		}
	}
}

// bootAppRuns runs berth boot until TestBootPull's app runs its registry
// image (what: the wait's name), stops it and returns its log.
func bootAppRuns(t *testing.T, cfg, state, sock, what string) string {
	t.Helper()
	log := &bootLog{}
	cmd := exec.Command(berthBin, "boot", "--config", cfg, "--state", state, "--socket", sock)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("berth boot (%s):\n%s", what, log.String())
		}
	}()
	h := &healthBoot{t: t, log: log}
	waitFor(t, what, log, func() bool {
		return h.ps()["app"].State == "running" && strings.Contains(log.String(), "app | app runs v1 from the registry")
	})
	return log.String()
}

// registryTree is the rootfs of the cache entry whose /version holds
// version.
func registryTree(t *testing.T, cache, version string) string {
	t.Helper()
	trees, _ := filepath.Glob(filepath.Join(cache, "sha256-*", "rootfs"))
	for _, tree := range trees {
		if b, err := os.ReadFile(filepath.Join(tree, "version")); err == nil && string(b) == version {
			return tree
		}
	}
	t.Fatalf("no tree in %s holds version %q (trees %v)", cache, version, trees)
	return ""
}
