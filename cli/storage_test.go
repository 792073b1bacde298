package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"berth/boot"
	"berth/internal/testutil"
)

// volumesConfig has containers writing into named volumes as a user
// namespace's root and as one of its users; extra is appended.
const volumesConfig = `[storage]
device = "LABEL=data"

[[container]]
name = "nsroot"
image = "bb.tar.zst"
oneshot = true
user_ns = true
command = ["sh", "-c", "cat /root/note 2>/dev/null || echo no note yet; echo written by nsroot >> /root/note"]
[[container.mount]]
volume = "notes"
target = "/root"

[[container]]
name = "nsuser"
image = "bb.tar.zst"
oneshot = true
user_ns = true
user = "1000:1000"
command = ["sh", "-c", "echo mine > /root/mine && echo nsuser wrote as $(id -u)"]
[[container.mount]]
volume = "own"
target = "/root"
`

// TestBootVolumes runs berth boot on this host with a [storage] table:
// it leaves the host's disks alone, keeps the volumes in STATE/volumes,
// makes each on first use owned by the container's user as the host sees
// it (a user namespace's root, or its user 1000), and says so in berth
// status. A second boot finds the volume's contents; a symlink planted
// where a volume would be is refused, its container alone failing, and
// an interrupted volume creation is finished.
func TestBootVolumes(t *testing.T) {
	dir := t.TempDir()
	if status, _, stderr := berth(t, "image", "pack", testutil.BusyboxRootfs(t), "-o", filepath.Join(dir, "bb.tar.zst")); status != 0 {
		t.Fatalf("pack: %s", stderr)
	}
	cfg, state, sock := filepath.Join(dir, "berth.toml"), filepath.Join(dir, "state"), filepath.Join(dir, "berth.sock")
	volumes := filepath.Join(state, "volumes")
	t.Setenv("BERTH_SOCKET", sock)

	// 1. First boot, kept up by an idle container for berth status.
	write(t, cfg, volumesConfig+"\n[[container]]\nname = \"idle\"\nimage = \"bb.tar.zst\"\ncommand = [\"sleep\", \"1000\"]\nstop_signal = \"SIGKILL\"\n")
	log := &bootLog{}
	cmd := exec.Command(berthBin, "boot", "--config", cfg, "--state", state, "--socket", sock)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, "both writers", log, func() bool {
		return strings.Contains(log.String(), "container nsroot exited") && strings.Contains(log.String(), "container nsuser exited")
	})
	_, text, _ := berth(t, "status")
	_, js, _ := berth(t, "status", "--json")
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	out := log.String()
	for _, w := range []string{"storage: LABEL=data not mounted: berth boot leaves this host's disks alone; volumes in " + volumes,
		"nsroot | no note yet", "nsuser | nsuser wrote as 1000"} {
		if !strings.Contains(out, w) {
			t.Errorf("first boot's log lacks %q", w)
		}
	}
	want := "storage     LABEL=data: not mounted (berth boot leaves this host's disks alone); state in " + state + ", volumes in " + volumes + "\n"
	if !strings.Contains(text, want) {
		t.Errorf("berth status lacks\n%s\n%s", want, text)
	}
	var st boot.Status
	if err := json.Unmarshal([]byte(js), &st); err != nil || st.Storage == nil {
		t.Fatalf("berth status --json: %v\n%s", err, js)
	}
	if s := st.Storage; s.State != "host" || s.Device != "LABEL=data" || s.FSType != "ext4" || s.Mount != "/data" || s.StateDir != state || s.Volumes != volumes {
		t.Errorf("berth status --json storage: %+v", *s)
	}
	for _, v := range []struct {
		name     string
		uid, gid uint32
		file     string
	}{{"notes", 100000, 100000, "note"}, {"own", 101000, 101000, "mine"}} {
		fi, err := os.Lstat(filepath.Join(volumes, v.name))
		if err != nil {
			t.Fatal(err)
		}
		sys := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode().Perm() != 0o755 || sys.Uid != v.uid || sys.Gid != v.gid {
			t.Errorf("volume %s: %v owned %d:%d, want a directory 0755 owned %d:%d", v.name, fi.Mode(), sys.Uid, sys.Gid, v.uid, v.gid)
		}
		if _, err := os.Stat(filepath.Join(volumes, v.name, v.file)); err != nil {
			t.Errorf("volume %s: the container's file: %v", v.name, err)
		}
	}
	if t.Failed() {
		t.Fatalf("log:\n%s", out)
	}

	// 2. Second boot: the note is there; a symlink planted at a volume's
	// name is refused; an interrupted creation (.new-NAME) is finished.
	outside := filepath.Join(dir, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(volumes, "planted")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(volumes, ".new-fresh"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(t, cfg, volumesConfig+`
[[container]]
name = "evil"
image = "bb.tar.zst"
command = ["sh", "-c", "echo escaped > /root/escaped"]
[[container.mount]]
volume = "planted"
target = "/root"

[[container]]
name = "fresh"
image = "bb.tar.zst"
command = ["sh", "-c", "echo fresh > /root/f && echo fresh wrote"]
[[container.mount]]
volume = "fresh"
target = "/root"
`)
	status, out, stderr := berth(t, "boot", "--config", cfg, "--state", state, "--socket", sock)
	if status != 1 {
		t.Errorf("second boot: status %d, want 1 (evil could not start)", status)
	}
	for _, w := range []string{"nsroot | written by nsroot", "fresh | fresh wrote",
		"container evil could not start: volume planted: " + filepath.Join(volumes, "planted") + ": ",
		"not a directory berth made (a symlink?), refusing it"} {
		if !strings.Contains(out, w) {
			t.Errorf("second boot's log lacks %q", w)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("the planted symlink was followed: %s holds %v", outside, ents)
	}
	if ents, _ := os.ReadDir(volumes); len(ents) != 4 {
		t.Errorf("volumes: %v, want fresh, notes, own and planted", ents)
	}
	if t.Failed() {
		t.Logf("log:\n%s%s", out, stderr)
	}
}
