package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"berth/boot"
	"berth/internal/testutil"
)

// genConfig is an appliance of two containers: ledger, and shop after
// it, which says its version ("web N up"). IMAGE and COMMAND are
// replaced. The names are unusual: a container's cgroup is named after
// it, and other tests on this host may run a "web" at the same time.
const genConfig = `
[update]
grace_period = "1s"
max_boot_attempts = 2

[[container]]
name = "ledger"
image = "bb.tar.zst"
command = ["sh", "-c", "echo ledger up; exec sleep 1000"]
stop_timeout = "1s"

[[container]]
name = "shop"
image = "IMAGE"
after = ["ledger"]
stop_timeout = "1s"
command = ["sh", "-c", "COMMAND"]
`

// webUp is a web that serves: it says its version and stays up.
const webUp = "echo web VERSION up; exec sleep 1000"

// genWorld is one appliance under berth boot for the generation tests.
type genWorld struct {
	t    *testing.T
	dir  string
	sock string
	cmd  *exec.Cmd
	log  *bootLog
}

// newGenWorld packs the image and writes the boot config (web v1).
func newGenWorld(t *testing.T) *genWorld {
	w := &genWorld{t: t, dir: t.TempDir()}
	rootfs := testutil.BusyboxRootfs(t)
	if status, _, stderr := berth(t, "image", "pack", rootfs, "-o", filepath.Join(w.dir, "bb.tar.zst")); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	w.sock = filepath.Join(w.dir, "berth.sock")
	t.Setenv("BERTH_SOCKET", w.sock)
	w.writeConfig("berth.toml", "bb.tar.zst", webUp, "1")
	return w
}

// writeConfig writes a config whose web runs command at version.
func (w *genWorld) writeConfig(name, img, command, version string) string {
	p := filepath.Join(w.dir, name)
	command = strings.ReplaceAll(command, "VERSION", version)
	write(w.t, p, strings.NewReplacer("IMAGE", img, "COMMAND", command).Replace(genConfig))
	return p
}

// boot starts berth boot with env added, and stops it when the test ends.
func (w *genWorld) boot(env ...string) {
	w.log = &bootLog{}
	cmd := exec.Command(berthBin, "boot", "--config", filepath.Join(w.dir, "berth.toml"), "--state", filepath.Join(w.dir, "state"), "--socket", w.sock)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = w.log, w.log
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.cmd = cmd
	log := w.log
	w.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if w.t.Failed() {
			w.t.Logf("berth boot:\n%s", log.String())
		}
	})
}

// restart stops berth boot as a poweroff would, and boots again.
func (w *genWorld) restart() {
	w.cmd.Process.Signal(syscall.SIGTERM)
	w.cmd.Wait()
	w.boot()
}

// settled waits until generation n is committed and web serves.
func (w *genWorld) settled(n int) boot.GenerationInfo {
	var g boot.GenerationInfo
	waitFor(w.t, "generation "+strconv.Itoa(n)+" committed and web running", w.log, func() bool {
		g = w.generation()
		return g.State == "committed" && g.Current == n && w.ps()["shop"].State == "running"
	})
	return g
}

// generation is berth status --json's generation.
func (w *genWorld) generation() boot.GenerationInfo {
	status, out, _ := berth(w.t, "status", "--json")
	var st boot.Status
	if status != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Generation == nil {
		return boot.GenerationInfo{}
	}
	return *st.Generation
}

// ps is berth ps --json by name.
func (w *genWorld) ps() map[string]boot.Process {
	status, out, _ := berth(w.t, "ps", "--json")
	var rows []boot.Process
	if status != 0 || json.Unmarshal([]byte(out), &rows) != nil {
		return nil
	}
	m := map[string]boot.Process{}
	for _, r := range rows {
		m[r.Name] = r
	}
	return m
}

// webSays is web's last line of output.
func (w *genWorld) webSays() string {
	_, out, _ := berth(w.t, "logs", "-n", "1", "shop")
	return strings.TrimSpace(out)
}

// TestApplyCommits applies a config whose web is a new version: it
// commits, the new shop serves and ledger is untouched; berth rollback then
// brings the old web back.
func TestApplyCommits(t *testing.T) {
	w := newGenWorld(t)
	w.boot()
	w.settled(1)
	before := w.ps()
	next := w.writeConfig("next.toml", "bb.tar.zst", webUp, "2")
	status, stdout, stderr := berth(t, "apply", "--progress", next)
	if status != 0 || !strings.Contains(stdout, "generation 2 committed") || !strings.Contains(stdout, "changed [shop]") {
		t.Fatalf("apply: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	wantSteps(t, stderr,
		"apply: read "+next+": containers ledger, shop",
		"apply: image "+filepath.Join(w.dir, "bb.tar.zst")+" for ledger: verifying, unpacking into the cache",
		"apply: image "+filepath.Join(w.dir, "bb.tar.zst")+" for shop: sha256:",
		"apply: trying generation 2: changed [shop], added [], removed []",
		"apply: container shop: waiting until it is ready (healthy, or up for 1s; a oneshot: exited 0)",
		"apply: container shop: ready (")
	after := w.ps()
	if after["shop"].Pid == before["shop"].Pid || after["shop"].State != "running" || w.webSays() != "web 2 up" {
		t.Errorf("web after apply: %+v, says %q", after["shop"], w.webSays())
	}
	if after["ledger"].Pid != before["ledger"].Pid {
		t.Errorf("apply restarted ledger, which did not change: pid %d, then %d", before["ledger"].Pid, after["ledger"].Pid)
	}
	g := w.generation()
	if g.Current != 2 || g.State != "committed" || g.Previous != 1 || g.Source != next {
		t.Errorf("status after apply: %+v", g)
	}
	_, human, _ := berth(t, "status")
	if !strings.Contains(human, "generation  2 committed, previous 1 from "+next) {
		t.Errorf("berth status lacks the generation line:\n%s", human)
	}
	// Applying the same file again changes nothing. To a pipe, without
	// --progress, apply prints no steps: berth sends none it was not asked
	// for, and the one answer is the last line.
	if status, stdout, stderr := berth(t, "apply", next); status != 0 || !strings.Contains(stdout, "nothing changed: generation 2 stays") || stderr != "" {
		t.Errorf("apply again: %d %q, stderr %q", status, stdout, stderr)
	}
	// berth rollback: generation 1 again, by hand; no second one.
	if status, stdout, stderr := berth(t, "rollback"); status != 0 || !strings.Contains(stdout, "rolled back from generation 2 to generation 1") {
		t.Fatalf("rollback: %d %q %q", status, stdout, stderr)
	}
	g = w.settled(1)
	if g.LastRollback == nil || g.LastRollback.From != 2 || !strings.Contains(g.LastRollback.Reason, "by hand") {
		t.Errorf("after rollback: %+v", g)
	}
	waitFor(t, "web 1 to serve again", w.log, func() bool { return w.webSays() == "web 1 up" })
	if status, _, stderr := berth(t, "rollback"); status == 0 || !strings.Contains(stderr, "no previous generation") {
		t.Errorf("second rollback: %d %q", status, stderr)
	}
}

// wantSteps checks that stderr has a stamped line for each step, in
// order: "HH:MM:SS " then the step's beginning.
func wantSteps(t *testing.T, stderr string, steps ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	i := 0
	for _, l := range lines {
		if i < len(steps) && len(l) > 9 && l[2] == ':' && l[5] == ':' && l[8] == ' ' && strings.HasPrefix(l[9:], steps[i]) {
			i++
		}
	}
	if i < len(steps) {
		t.Errorf("apply --progress: no step %q (after the %d before it) in:\n%s", steps[i], i, stderr)
	}
}

// TestApplyRollsBack applies a web that crashes within its grace period:
// the generation rolls back by itself and the old web serves again.
func TestApplyRollsBack(t *testing.T) {
	w := newGenWorld(t)
	w.boot()
	w.settled(1)
	for _, tc := range []struct{ name, restart, command, why string }{
		{"exits", "never", "echo web VERSION up; sleep 0.2; exit 3", "container shop: is failed (status 3)"},
		{"crash loop", "always", "echo web VERSION up; sleep 0.2; exit 1", "container shop: exited with status 1 and is restarting"},
		{"exits 0", "never", "echo web VERSION up", "container shop: is exited (status 0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := w.writeConfig(tc.name+".toml", "bb.tar.zst", tc.command, "2")
			data, _ := os.ReadFile(bad)
			write(t, bad, strings.Replace(string(data), `name = "shop"`, "name = \"shop\"\nrestart = \""+tc.restart+"\"", 1))
			status, stdout, stderr := berth(t, "apply", bad)
			if status == 0 || !strings.Contains(stderr, "rolled back to generation 1") || !strings.Contains(stderr, tc.why) {
				t.Fatalf("apply: status %d, stdout %q, stderr %q", status, stdout, stderr)
			}
			g := w.settled(1)
			if g.LastRollback == nil || g.LastRollback.To != 1 || !strings.Contains(g.LastRollback.Reason, tc.why) {
				t.Errorf("status: %+v", g)
			}
			waitFor(t, "the old web to serve", w.log, func() bool { return w.webSays() == "web 1 up" })
		})
	}
}

// TestApplyPhase1Failure applies configs that fail before anything
// running changes: an invalid one, one whose image is missing. Nothing
// restarts, and apply says why.
func TestApplyPhase1Failure(t *testing.T) {
	w := newGenWorld(t)
	w.boot()
	w.settled(1)
	before := w.ps()
	invalid := filepath.Join(w.dir, "invalid.toml")
	write(t, invalid, "[[container]]\nname = \"web\"\n")
	missing := w.writeConfig("missing.toml", "missing.tar.zst", webUp, "2")
	empty := filepath.Join(w.dir, "empty.toml")
	write(t, empty, "")
	fifo := filepath.Join(w.dir, "fifo.toml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, why string }{
		{invalid, "missing image"},
		{missing, "missing.tar.zst"},
		{filepath.Join(w.dir, "none.toml"), "none.toml"},
		// An update would stop every container.
		{empty, "has no [[container]]"},
		// Read without blocking: no writer would ever come, and the
		// update would hold every later one.
		{fifo, "not a regular file (a FIFO)"},
		{fifo, "not a regular file (a FIFO)"},
	} {
		status, _, stderr := berth(t, "apply", tc.file)
		if status == 0 || !strings.Contains(stderr, "apply refused, nothing changed") || !strings.Contains(stderr, tc.why) {
			t.Errorf("apply %s: status %d, stderr %q", tc.file, status, stderr)
		}
	}
	after := w.ps()
	for _, name := range []string{"ledger", "shop"} {
		if after[name].Pid != before[name].Pid || after[name].State != "running" {
			t.Errorf("%s changed: %+v, then %+v", name, before[name], after[name])
		}
	}
	if g := w.generation(); g.Current != 1 || g.State != "committed" || g.LastRollback != nil {
		t.Errorf("status: %+v", g)
	}
}

// TestReloadSIGHUP replaces the boot config file and sends berth SIGHUP:
// the file becomes generation 2.
func TestReloadSIGHUP(t *testing.T) {
	w := newGenWorld(t)
	w.boot()
	w.settled(1)
	w.writeConfig("berth.toml", "bb.tar.zst", webUp, "2")
	if err := w.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	w.settled(2)
	waitFor(t, "web 2 to serve", w.log, func() bool { return w.webSays() == "web 2 up" })
}

// crashSteps are the steps of an update at which the crash-injection
// tests kill berth boot, and the generation the next boot must end on:
// before the trying record, the committed one; from it on, the new one
// (booted whole, checked, committed); once a rollback is recorded, the
// committed one.
var crashSteps = []struct {
	step string
	bad  bool // the update's web fails, so that it rolls back
	want int
}{
	{"resolved", false, 1},
	{"written", false, 1},
	{"trying", false, 2},
	{"switched", false, 2},
	{"committed", false, 2},
	{"rolledback", true, 1},
}

// TestUpdateCrashInjection kills berth boot with SIGKILL at each step of
// an update, as a power cut would stop it, and boots again: the device
// ends on one whole generation, whose web says its version.
func TestUpdateCrashInjection(t *testing.T) {
	for _, tc := range crashSteps {
		t.Run(tc.step, func(t *testing.T) {
			w := newGenWorld(t)
			w.boot("BERTH_CRASH_AT=" + tc.step)
			w.settled(1)
			command := webUp
			if tc.bad {
				command = "echo web VERSION up; exit 3"
			}
			next := w.writeConfig("next.toml", "bb.tar.zst", command, "2")
			if status, stdout, stderr := berth(t, "apply", next); status == 0 {
				t.Fatalf("apply survived its crash: %q %q", stdout, stderr)
			}
			w.cmd.Wait()
			if !strings.Contains(w.log.String(), "BERTH_CRASH_AT="+tc.step+": killing berth here") {
				t.Fatalf("berth did not crash at %s:\n%s", tc.step, w.log.String())
			}
			w.boot()
			g := w.settled(tc.want)
			want := "web " + strconv.Itoa(tc.want) + " up"
			waitFor(t, "web to say "+want, w.log, func() bool { return w.webSays() == want })
			if g.Current != tc.want || (tc.want == 2 && g.Previous != 1) {
				t.Errorf("after the crash at %s: %+v", tc.step, g)
			}
		})
	}
}

// TestBootCounting boots a generation that never gets committed — berth
// is killed at each boot before it could be — until [update]
// max_boot_attempts (2) boots have been spent on it: the next boot
// reverts to the committed generation and says why.
func TestBootCounting(t *testing.T) {
	w := newGenWorld(t)
	w.boot("BERTH_CRASH_AT=switched")
	w.settled(1)
	next := w.writeConfig("next.toml", "bb.tar.zst", webUp, "2")
	berth(t, "apply", next)
	w.cmd.Wait()
	for boot := 1; boot <= 2; boot++ {
		w.boot("BERTH_CRASH_AT=checking")
		w.cmd.Wait()
		if want := "generation: booting 2 (trying, boot " + strconv.Itoa(boot) + " of 2)"; !strings.Contains(w.log.String(), want) {
			t.Fatalf("boot %d: the log lacks %q:\n%s", boot, want, w.log.String())
		}
	}
	w.boot()
	g := w.settled(1)
	if g.LastRollback == nil || g.LastRollback.From != 2 || !strings.Contains(g.LastRollback.Reason, "not committed within 2 boots") {
		t.Errorf("status: %+v", g)
	}
	waitFor(t, "web 1 to serve", w.log, func() bool { return w.webSays() == "web 1 up" })
}

// TestGCKeepsGenerations checks berth image gc keeps the images of the
// previous committed generation, which no container runs any more, and
// removes a tree no generation needs (one a refused apply unpacked).
func TestGCKeepsGenerations(t *testing.T) {
	w := newGenWorld(t)
	rootfs2 := filepath.Join(w.dir, "rootfs2")
	if out, err := exec.Command("cp", "-a", testutil.BusyboxRootfs(t), rootfs2).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	digests := map[string]string{}
	for _, v := range []string{"2", "3"} {
		write(t, filepath.Join(rootfs2, "version"), v)
		img := filepath.Join(w.dir, "bb"+v+".tar.zst")
		if status, _, stderr := berth(t, "image", "pack", rootfs2, "-o", img); status != 0 {
			t.Fatalf("pack: %s", stderr)
		}
		_, out, _ := berth(t, "image", "digest", img)
		digests[v] = strings.Fields(out)[0]
	}
	_, out, _ := berth(t, "image", "digest", filepath.Join(w.dir, "bb.tar.zst"))
	digests["1"] = strings.Fields(out)[0]
	w.boot()
	w.settled(1)
	// Generation 2: every container on bb2; generation 1's image is
	// mounted by none.
	next := w.writeConfig("next.toml", "bb2.tar.zst", webUp, "2")
	data, _ := os.ReadFile(next)
	write(t, next, strings.ReplaceAll(string(data), `"bb.tar.zst"`, `"bb2.tar.zst"`))
	if status, _, stderr := berth(t, "apply", next); status != 0 {
		t.Fatalf("apply: %s", stderr)
	}
	// A refused apply leaves bb3's tree in the cache.
	refused := w.writeConfig("refused.toml", "missing.tar.zst", webUp, "3")
	data, _ = os.ReadFile(refused)
	write(t, refused, strings.ReplaceAll(string(data), `"bb.tar.zst"`, `"bb3.tar.zst"`))
	if status, _, _ := berth(t, "apply", refused); status == 0 {
		t.Fatal("an apply with a missing image was taken")
	}
	cache := filepath.Join(w.dir, "state", "images")
	status, stdout, stderr := berth(t, "image", "gc", "--cache", cache, "--keep", digests["2"])
	if status != 0 || strings.TrimSpace(stdout) != "removed "+digests["3"] {
		t.Errorf("gc: status %d, stdout %q (want only %s removed), stderr %q", status, stdout, digests["3"], stderr)
	}
	// Without the generations, generation 1's image would go.
	noGens := t.TempDir() // a state whose generations directory is empty
	os.Mkdir(filepath.Join(noGens, "generations"), 0o700)
	status, stdout, _ = berth(t, "image", "gc", "--cache", cache, "--keep", digests["2"], "--state", noGens)
	if status != 0 || strings.TrimSpace(stdout) != "removed "+digests["1"] {
		t.Errorf("gc without the generations: status %d, stdout %q", status, stdout)
	}
}

// TestBootConfigChangedWhileDown edits the boot config file while berth
// is down: the next boot runs it as it is, recorded as generation 2 with
// generation 1 kept for berth rollback.
func TestBootConfigChangedWhileDown(t *testing.T) {
	w := newGenWorld(t)
	w.boot()
	w.settled(1)
	w.cmd.Process.Signal(syscall.SIGTERM)
	w.cmd.Wait()
	w.writeConfig("berth.toml", "bb.tar.zst", webUp, "2")
	w.boot()
	g := w.settled(2)
	waitFor(t, "web 2 to serve", w.log, func() bool { return w.webSays() == "web 2 up" })
	if g.Previous != 1 {
		t.Errorf("status: %+v", g)
	}
	if status, stdout, stderr := berth(t, "rollback"); status != 0 || !strings.Contains(stdout, "rolled back from generation 2 to generation 1") {
		t.Fatalf("rollback: %d %q %q", status, stdout, stderr)
	}
	waitFor(t, "web 1 to serve", w.log, func() bool { return w.webSays() == "web 1 up" })
}

// TestApplyWaitsForHealth applies new versions of shop with a health
// check: one whose check passes commits as soon as it is healthy — its
// grace period of an hour never runs out — and one whose check fails
// rolls back by itself, the old shop serving again.
func TestApplyWaitsForHealth(t *testing.T) {
	w := newGenWorld(t)
	w.boot()
	w.settled(1)
	withHealth := func(name, version, check string) string {
		p := w.writeConfig(name, "bb.tar.zst", webUp, version)
		data, _ := os.ReadFile(p)
		cfg := strings.Replace(string(data), `grace_period = "1s"`, `grace_period = "1h"`, 1)
		cfg = strings.Replace(cfg, `name = "shop"`, `name = "shop"`+"\nrestart = \"always\"", 1)
		cfg += "[container.health]\ncommand = [\"/bin/sh\", \"-c\", \"" + check + "\"]\ninterval = \"200ms\"\ntimeout = \"5s\"\nretries = 2\n"
		write(t, p, cfg)
		return p
	}
	sick := withHealth("sick.toml", "2", "exit 1")
	status, stdout, stderr := berth(t, "apply", sick)
	if status == 0 || !strings.Contains(stderr, "rolled back to generation 1") || !strings.Contains(stderr, "unhealthy") {
		t.Fatalf("apply of a version that turns unhealthy: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	w.settled(1)
	waitFor(t, "the old web to serve", w.log, func() bool { return w.webSays() == "web 1 up" })

	well := withHealth("well.toml", "3", "true")
	if status, stdout, stderr := berth(t, "apply", well); status != 0 {
		t.Fatalf("apply of a healthy version: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	if g := w.generation(); g.State != "committed" || g.Current != 3 {
		t.Errorf("after the healthy apply: %+v", g)
	}
	if p := w.ps()["shop"]; p.Health != "healthy" {
		t.Errorf("shop after the healthy apply: %+v", p)
	}
}

// packVersion packs versioned.tar.zst: the busybox rootfs with /version
// saying v.
func (w *genWorld) packVersion(v string) {
	t := w.t
	tree := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", testutil.BusyboxRootfs(t), tree).CombinedOutput(); err != nil {
		t.Fatalf("copy the rootfs: %v\n%s", err, out)
	}
	write(t, filepath.Join(tree, "version"), v+"\n")
	img := filepath.Join(w.dir, "versioned.tar.zst")
	os.Remove(img)
	if status, _, stderr := berth(t, "image", "pack", tree, "-o", img); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
}

// TestBootImageReplacedWhileDown replaces the image file while berth is
// down, its path and the config unchanged (a new initramfs or root
// filesystem): the next boot runs the new image and records it as
// generation 2, the old one kept for rollback; a boot with nothing
// changed records nothing.
func TestBootImageReplacedWhileDown(t *testing.T) {
	w := newGenWorld(t)
	packVersion := w.packVersion
	packVersion("1")
	w.writeConfig("berth.toml", "versioned.tar.zst", "echo web $(cat /version) up; exec sleep 1000", "")
	restart := w.restart
	w.boot()
	w.settled(1)
	waitFor(t, "web 1 to serve", w.log, func() bool { return w.webSays() == "web 1 up" })
	packVersion("2")
	restart()
	g := w.settled(2)
	waitFor(t, "web 2 to serve", w.log, func() bool { return w.webSays() == "web 2 up" })
	if g.Previous != 1 {
		t.Errorf("status after the image was replaced: %+v", g)
	}
	restart()
	w.settled(2)
	waitFor(t, "web 2 to serve again", w.log, func() bool { return w.webSays() == "web 2 up" })
	if !strings.Contains(w.log.String(), "generation 2: the boot config file and its images are unchanged") {
		t.Errorf("the unchanged boot does not say so")
	}
	if status, stdout, stderr := berth(t, "rollback"); status != 0 || !strings.Contains(stdout, "rolled back from generation 2 to generation 1") {
		t.Fatalf("rollback: %d %q %q", status, stdout, stderr)
	}
	waitFor(t, "web 1 to serve after the rollback", w.log, func() bool { return w.webSays() == "web 1 up" })
}

// TestReloadGivenUpStaysGivenUp: a boot config file that berth reload
// took and then gave up — rolled back by hand, or by itself when its web
// failed — is not booted again by the next boot from the same bytes: the
// record says generation 1 is committed, and generation 1 runs, until
// the next update. (Before, the boot took the file as the unchanged boot
// config and ran it while saying generation 1.)
func TestReloadGivenUpStaysGivenUp(t *testing.T) {
	w := newGenWorld(t)
	restart := w.restart
	w.boot()
	w.settled(1)
	w.writeConfig("berth.toml", "bb.tar.zst", webUp, "2")
	if status, _, stderr := berth(t, "reload"); status != 0 {
		t.Fatalf("reload: %s", stderr)
	}
	w.settled(2)
	if status, _, stderr := berth(t, "rollback"); status != 0 {
		t.Fatalf("rollback: %s", stderr)
	}
	waitFor(t, "web 1 to serve after the rollback", w.log, func() bool { return w.webSays() == "web 1 up" })
	restart()
	w.settled(1)
	waitFor(t, "web 1 to serve after a reboot", w.log, func() bool { return w.webSays() == "web 1 up" })

	w.writeConfig("berth.toml", "bb.tar.zst", "echo web bad; exit 1", "")
	if status, _, stderr := berth(t, "reload"); status == 0 || !strings.Contains(stderr, "rolled back to generation 1") {
		t.Fatalf("reload of a failing web: %d %s", status, stderr)
	}
	restart()
	w.settled(1)
	waitFor(t, "web 1 to serve after a reboot", w.log, func() bool { return w.webSays() == "web 1 up" })
	if strings.Contains(w.log.String(), "web bad") {
		t.Errorf("the boot ran the web given up")
	}
	// The next update clears the hold: a good file reloaded commits and
	// boots as the boot config file again.
	w.writeConfig("berth.toml", "bb.tar.zst", webUp, "3")
	if status, _, stderr := berth(t, "reload"); status != 0 {
		t.Fatalf("reload: %s", stderr)
	}
	restart()
	w.settled(4)
	waitFor(t, "web 3 to serve after a reboot", w.log, func() bool { return w.webSays() == "web 3 up" })
}

// TestReloadImageGivenUpStaysGivenUp: an image replaced at its path that
// berth reload took and gave up (the web in it fails) is not taken by the
// next boot as an image replaced while berth was down: generation 1 runs,
// from the cache, by its recorded digest.
func TestReloadImageGivenUpStaysGivenUp(t *testing.T) {
	w := newGenWorld(t)
	w.packVersion("1")
	w.writeConfig("berth.toml", "versioned.tar.zst", `v=$(cat /version); [ $v = bad ] && { echo web bad; exit 1; }; echo web $v up; exec sleep 1000`, "")
	w.boot()
	w.settled(1)
	waitFor(t, "web 1 to serve", w.log, func() bool { return w.webSays() == "web 1 up" })
	w.packVersion("bad")
	if status, _, stderr := berth(t, "reload"); status == 0 || !strings.Contains(stderr, "rolled back to generation 1") {
		t.Fatalf("reload of a failing image: %d %s", status, stderr)
	}
	w.restart()
	w.settled(1)
	waitFor(t, "web 1 to serve after a reboot", w.log, func() bool { return w.webSays() == "web 1 up" })
	if strings.Contains(w.log.String(), "web bad") {
		t.Errorf("the boot ran the image given up")
	}
}

// TestRollbackThatFailsGoesBack: berth rollback to a generation that no
// longer runs (its bind source is gone) goes back to the generation it
// left, which stays committed, on disk and booted next; before, that one
// was deleted and the failed one held, for every boot.
func TestRollbackThatFailsGoesBack(t *testing.T) {
	w := rollbackWorld(t)
	status, stdout, stderr := berth(t, "rollback")
	if status != 1 || !strings.Contains(stderr, "rolled back from generation 2 to generation 1, but container shop: ") ||
		!strings.Contains(stderr, "back on generation 2, which stays committed") {
		t.Fatalf("rollback: %d %q %q", status, stdout, stderr)
	}
	g := w.settled(2)
	if g.Previous != 1 || g.LastRollback == nil || !strings.Contains(g.LastRollback.Reason, "by hand (berth rollback), undone: ") {
		t.Errorf("after the failed rollback: %+v", g)
	}
	waitFor(t, "web 2 to serve again", w.log, func() bool { return w.webSays() == "web 2 up" })
	for _, n := range []string{"1", "2"} {
		if _, err := os.Stat(filepath.Join(w.dir, "state", "generations", n)); err != nil {
			t.Errorf("generation %s: %v", n, err)
		}
	}
	w.restart()
	w.settled(2)
	waitFor(t, "web 2 to serve after a reboot", w.log, func() bool { return w.webSays() == "web 2 up" })
}

// TestRollbackCrashKeepsGeneration: berth killed (a power cut) while
// berth rollback checks the generation it went back to: the next boot
// runs that one, and the generation left is still on disk and the
// previous one, so that berth rollback can go back to it.
func TestRollbackCrashKeepsGeneration(t *testing.T) {
	w := rollbackWorld(t, "BERTH_CRASH_AT=rolledback")
	if status, _, _ := berth(t, "rollback"); status == 0 {
		t.Fatal("rollback survived its crash")
	}
	w.cmd.Wait()
	w.boot()
	var g boot.GenerationInfo
	waitFor(t, "generation 1 booted, 2 its previous", w.log, func() bool {
		g = w.generation()
		return g.Current == 1 && g.Previous == 2
	})
	if _, err := os.Stat(filepath.Join(w.dir, "state", "generations", "2")); err != nil {
		t.Errorf("generation 2 after the crash: %v", err)
	}
	if status, stdout, stderr := berth(t, "rollback"); status != 0 || !strings.Contains(stdout, "rolled back from generation 1 to generation 2") {
		t.Fatalf("rollback to 2: %d %q %q", status, stdout, stderr)
	}
	w.settled(2)
	waitFor(t, "web 2 to serve", w.log, func() bool { return w.webSays() == "web 2 up" })
}

// rollbackWorld boots generation 1, whose web binds a directory, applies
// generation 2, which does not, then removes the directory: generation 1
// can no longer run. env goes to berth boot.
func rollbackWorld(t *testing.T, env ...string) *genWorld {
	w := newGenWorld(t)
	vol := filepath.Join(w.dir, "vol")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	first := w.writeConfig("berth.toml", "bb.tar.zst", webUp, "1")
	data, _ := os.ReadFile(first)
	write(t, first, string(data)+"[[container.mount]]\nsource = \""+vol+"\"\ntarget = \"/vol\"\n")
	w.boot(env...)
	w.settled(1)
	next := w.writeConfig("next.toml", "bb.tar.zst", webUp, "2")
	if status, stdout, stderr := berth(t, "apply", next); status != 0 {
		t.Fatalf("apply: %d %q %q", status, stdout, stderr)
	}
	w.settled(2)
	if err := os.Remove(vol); err != nil {
		t.Fatal(err)
	}
	return w
}
