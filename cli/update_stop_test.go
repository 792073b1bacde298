package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestApplyStopsOffLoop applies a config that replaces shop, whose
// workload ignores its stop signal and whose stop_timeout is 60s. The
// apply stops it off the supervisor loop: meanwhile berth ps answers and
// shows it stopping, berth start and berth restart of it are refused, and
// berth stop -t 0 hurries it; the apply then commits. Before, the loop
// waited out the stop timeout and answered nothing for 65 s.
func TestApplyStopsOffLoop(t *testing.T) {
	w := newGenWorld(t)
	slow := func(p string) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		// shop's stop_timeout, the one followed by its command.
		write(t, p, strings.Replace(string(data), "stop_timeout = \"1s\"\ncommand", "stop_timeout = \"60s\"\ncommand", 1))
	}
	slow(filepath.Join(w.dir, "berth.toml"))
	w.boot()
	w.settled(1)
	next := w.writeConfig("next.toml", "bb.tar.zst", webUp, "2")
	slow(next)
	progress := &bootLog{}
	var stdout strings.Builder
	apply := exec.Command(berthBin, "apply", "--progress", next)
	apply.Stdout, apply.Stderr = &stdout, progress
	if err := apply.Start(); err != nil {
		t.Fatal(err)
	}
	applied := make(chan error, 1)
	go func() { applied <- apply.Wait() }()
	defer func() {
		apply.Process.Kill()
		<-applied
	}()
	waitFor(t, "the apply to wait for shop to stop", w.log, func() bool {
		return strings.Contains(progress.String(), "waiting for shop to stop")
	})
	if st := w.ps()["shop"].State; st != "stopping" {
		t.Errorf("berth ps while the apply waits: shop is %q, want stopping", st)
	}
	for _, verb := range []string{"start", "restart"} {
		if status, _, stderr := berth(t, verb, "shop"); status == 0 || !strings.Contains(stderr, "container shop is being replaced by an update: its new definition starts after the switch") {
			t.Errorf("berth %s shop while it is replaced: status %d, stderr %q", verb, status, stderr)
		}
	}
	if status, out, stderr := berth(t, "stop", "-t", "0", "shop"); status != 0 || !strings.Contains(out, "stopped shop") {
		t.Errorf("berth stop -t 0 shop: status %d, stdout %q, stderr %q", status, out, stderr)
	}
	select {
	case err := <-applied:
		applied <- err
		if err != nil || !strings.Contains(stdout.String(), "generation 2 committed") {
			t.Fatalf("apply: %v, stdout %q, progress:\n%s", err, stdout.String(), progress.String())
		}
	case <-time.After(30 * time.Second): // a hang guard
		t.Fatalf("the apply did not end once shop had stopped; progress:\n%s", progress.String())
	}
	w.settled(2)
	if says := w.webSays(); says != "web 2 up" {
		t.Errorf("after the apply web says %q", says)
	}
	if !strings.Contains(w.log.String(), "container shop stopped in ") {
		t.Errorf("the boot log does not say how long shop's stop took:\n%s", w.log.String())
	}
}

// TestApplyRemovesContainer applies a config without shop: the apply
// says so, shop's directory — its writable layer, with what it wrote —
// is gone once the apply has answered, and the trash it went through
// is emptied; ledger runs on untouched.
func TestApplyRemovesContainer(t *testing.T) {
	w := newGenWorld(t)
	w.writeConfig("berth.toml", "bb.tar.zst", "head -c 100000 /dev/zero > /written; "+webUp, "1")
	w.boot()
	w.settled(1)
	before := w.ps()
	next := filepath.Join(w.dir, "next.toml")
	write(t, next, genConfig[:strings.Index(genConfig, "[[container]]\nname = \"shop\"")])
	status, stdout, stderr := berth(t, "apply", next)
	if status != 0 || !strings.Contains(stdout, "generation 2 committed: changed [], added [], removed [shop]") {
		t.Fatalf("apply: status %d, stdout %q, stderr %q", status, stdout, stderr)
	}
	state := filepath.Join(w.dir, "state")
	if _, err := os.Lstat(filepath.Join(state, "containers", "shop")); !os.IsNotExist(err) {
		t.Errorf("shop's directory after the apply: %v, want it gone", err)
	}
	waitFor(t, "the trash to be emptied", w.log, func() bool {
		ents, err := os.ReadDir(filepath.Join(state, "trash"))
		return err == nil && len(ents) == 0
	})
	after := w.ps()
	if _, ok := after["shop"]; ok || after["ledger"].Pid != before["ledger"].Pid {
		t.Errorf("after the apply: %+v, want ledger as it was (pid %d) and no shop", after, before["ledger"].Pid)
	}
}
