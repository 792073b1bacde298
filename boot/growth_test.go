package boot

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"berth/image"
	"berth/internal/busybox"
	"berth/internal/testutil"
)

// growthScript is the restarting container: it exits 1 at once while
// /ctl/go is there, and otherwise stays up.
const growthScript = `if [ -e /ctl/go ]; then echo "exiting"; exit 1; fi
echo "up"
exec sleep 1000000
`

// lockedBuffer is the console of an in-process berth boot.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRestartsDoNotGrow runs berth boot in this process with two
// containers, one restarting at once (restart_delay = "0s") while a file
// is there, and checks that restarts leave nothing behind in PID 1: with
// both containers up again, after 300 more restarts, the goroutines and
// the open file descriptors are those there were after the first 30.
func TestRestartsDoNotGrow(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("berth boot needs root: namespaces, mounts and cgroups are real")
	}
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	if err := busybox.Rootfs(testutil.RepoRoot(), runtime.GOARCH, rootfs, map[string]string{"crash.sh": growthScript}); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "bb.tar.zst")
	if err := image.Pack(rootfs, img, image.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	ctl := filepath.Join(dir, "ctl")
	if err := os.Mkdir(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("grow%d", os.Getpid())
	cfg := fmt.Sprintf(`[[container]]
name = "%[1]s-web"
image = %[2]q
command = ["sleep", "1000000"]
stop_timeout = "1s"

[[container]]
name = "%[1]s-crash"
image = %[2]q
command = ["/bin/sh", "/crash.sh"]
restart = "always"
restart_delay = "0s"
stop_timeout = "1s"
log_console = false
[[container.mount]]
source = %[3]q
target = "/ctl"
`, name, img, ctl)
	cfgPath := filepath.Join(dir, "berth.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &growth{t: t, sock: filepath.Join(dir, "berth.sock"), ctl: ctl, crash: name + "-crash", web: name + "-web"}
	console := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Main(Options{ConfigPath: cfgPath, StateDir: filepath.Join(dir, "state"), Socket: g.sock, Console: console})
	}()
	defer func() {
		_ = Call(g.sock, Request{Verb: "poweroff"}, func(Response) error { return nil })
		select {
		case <-done:
		case <-time.After(time.Minute): // a hang guard
			t.Errorf("berth boot did not power off; console:\n%s", console.String())
		}
	}()
	g.waitUp(0, console)
	g.cycle(30, console)
	before := counts()
	g.cycle(330, console)
	g.same(before, console)
}

// growth drives the in-process berth boot of TestRestartsDoNotGrow.
type growth struct {
	t                     *testing.T
	sock, ctl, crash, web string
}

// ps returns each container's row, by name.
func (g *growth) ps() map[string]Process {
	m := map[string]Process{}
	_ = Call(g.sock, Request{Verb: "ps"}, func(r Response) error {
		for _, p := range r.Processes {
			m[p.Name] = p
		}
		return nil
	})
	return m
}

// waitFor polls ps until ok holds; the limit is a hang guard.
func (g *growth) waitFor(what string, ok func(map[string]Process) bool, console *lockedBuffer) {
	g.t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		m := g.ps()
		if ok(m) {
			return
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("no %s: %+v; console:\n%s", what, m, console.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitUp waits until both containers run and crash has restarted at
// least n times and stays up.
func (g *growth) waitUp(n int, console *lockedBuffer) {
	g.t.Helper()
	g.waitFor("both containers up", func(m map[string]Process) bool {
		return m[g.web].State == "running" && m[g.crash].State == "running" && m[g.crash].Restarts >= n && m[g.crash].UptimeSec > 0.5
	}, console)
}

// cycle makes crash restart until it has restarted n times, then up.
func (g *growth) cycle(n int, console *lockedBuffer) {
	g.t.Helper()
	if err := os.WriteFile(filepath.Join(g.ctl, "go"), nil, 0o644); err != nil {
		g.t.Fatal(err)
	}
	if err := Call(g.sock, Request{Verb: "restart", Name: g.crash}, func(Response) error { return nil }); err != nil {
		g.t.Fatal(err)
	}
	g.waitFor(fmt.Sprintf("%d restarts", n), func(m map[string]Process) bool { return m[g.crash].Restarts >= n }, console)
	if err := os.Remove(filepath.Join(g.ctl, "go")); err != nil {
		g.t.Fatal(err)
	}
	g.waitUp(n, console)
}

// count is what a restart must not leave behind.
type count struct {
	goroutines, fds int
}

func counts() count {
	fds, _ := os.ReadDir("/proc/self/fd")
	return count{goroutines: runtime.NumGoroutine(), fds: len(fds)}
}

// same waits until the counts are back to before: a goroutine still
// ending (a control connection's, an output reader's) is let finish; a
// leak never does. The wait is a hang guard, not a timing check.
func (g *growth) same(before count, console *lockedBuffer) {
	g.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		now := counts()
		if now.goroutines <= before.goroutines && now.fds <= before.fds {
			return
		}
		if time.Now().After(deadline) {
			var stacks bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			g.t.Fatalf("after 300 more restarts: %d goroutines and %d fds, %d and %d before\n%s", now.goroutines, now.fds, before.goroutines, before.fds, stacks.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
