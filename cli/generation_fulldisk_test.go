package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestApplyRollsBackOnFullDisk: a generation that fails while the data
// partition is full is rolled back all the same — its rollback cannot be
// recorded, and apply says so — and the old web serves again; once there
// is room, the next boot runs the committed generation too.
func TestApplyRollsBackOnFullDisk(t *testing.T) {
	w := newGenWorld(t)
	state := filepath.Join(w.dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", state, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mount a 16 MiB tmpfs at %s: %v", state, err)
	}
	t.Cleanup(func() { syscall.Unmount(state, syscall.MNT_DETACH) })
	w.boot()
	w.settled(1)

	bad := w.writeConfig("late-crash.toml", "bb.tar.zst", "echo web VERSION up; sleep 3; exit 3", "2")
	done := berthAsync(t, "apply", bad)
	waitFor(t, "generation 2 being tried", w.log, func() bool {
		g := w.generation()
		return g.State == "trying" && g.Current == 2
	})
	filler := filepath.Join(state, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break // ENOSPC: the data partition is full
		}
	}
	f.Close()
	r := <-done
	if r.status == 0 || !strings.Contains(r.stderr, "rolled back to generation 1") || !strings.Contains(r.stderr, "could not be recorded") {
		t.Fatalf("apply on a full disk: status %d, stdout %q, stderr %q", r.status, r.stdout, r.stderr)
	}
	g := w.settled(1)
	if g.LastRollback == nil || g.LastRollback.From != 2 || !strings.Contains(g.Unrecorded, "no space left on device") {
		t.Errorf("status after the rollback: %+v; want it to say the record was not written", g)
	}
	if _, out, _ := berth(t, "status"); !strings.Contains(out, "record\tnot written, the next boot goes by the one on disk") && !strings.Contains(out, "not written, the next boot goes by the one on disk") {
		t.Errorf("berth status does not say the record was not written:\n%s", out)
	}
	waitFor(t, "the old web to serve", w.log, func() bool { return w.webSays() == "web 1 up" })
	// The partition is full: gc, which would free it, must run.
	if status, stdout, stderr := berth(t, "image", "gc", "--cache", filepath.Join(state, "images"), "--state", state, "--config", filepath.Join(w.dir, "berth.toml")); status != 0 {
		t.Errorf("image gc after the unrecorded rollback: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	w.restart()
	if g := w.settled(1); g.Unrecorded != "" {
		t.Errorf("status after a reboot with room: %+v", g)
	}
	waitFor(t, "the old web to serve after a reboot", w.log, func() bool { return w.webSays() == "web 1 up" })
}
