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
	name := fmt.Sprintf("grow%d", os.Getpid())
	cfg := fmt.Sprintf(`[[container]]
name = "%[1]s-web"
image = "IMAGE"
command = ["sleep", "1000000"]
stop_timeout = "1s"

[[container]]
name = "%[1]s-crash"
image = "IMAGE"
command = ["/bin/sh", "/crash.sh"]
restart = "always"
restart_delay = "0s"
stop_timeout = "1s"
log_console = false
[[container.mount]]
source = "SHARED"
target = "/ctl"
`, name)
	h := startHostBoot(t, cfg, map[string]string{"crash.sh": growthScript}, nil)
	g := &growth{hostBoot: h, crash: name + "-crash", web: name + "-web"}
	g.waitUp(0)
	g.cycle(30)
	before := counts()
	g.cycle(330)
	g.same(before)
}

// growth drives the in-process berth boot of TestRestartsDoNotGrow; its
// control directory is the boot's SHARED.
type growth struct {
	*hostBoot
	crash, web string
}

// waitPs polls ps until ok holds; the limit is a hang guard.
func (g *growth) waitPs(what string, ok func(map[string]Process) bool) {
	g.t.Helper()
	g.waitFor(what, 5*time.Minute, func() bool { return ok(g.ps()) })
}

// waitUp waits until both containers run and crash has restarted at
// least n times and stays up.
func (g *growth) waitUp(n int) {
	g.t.Helper()
	g.waitPs("both containers up", func(m map[string]Process) bool {
		return m[g.web].State == "running" && m[g.crash].State == "running" && m[g.crash].Restarts >= n && m[g.crash].UptimeSec > 0.5
	})
}

// cycle makes crash restart until it has restarted n times, then up.
func (g *growth) cycle(n int) {
	g.t.Helper()
	if err := os.WriteFile(filepath.Join(g.shared, "go"), nil, 0o644); err != nil {
		g.t.Fatal(err)
	}
	if err := Call(g.sock, Request{Verb: "restart", Name: g.crash}, func(Response) error { return nil }); err != nil {
		g.t.Fatal(err)
	}
	g.waitPs(fmt.Sprintf("%d restarts", n), func(m map[string]Process) bool { return m[g.crash].Restarts >= n })
	if err := os.Remove(filepath.Join(g.shared, "go")); err != nil {
		g.t.Fatal(err)
	}
	g.waitUp(n)
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
func (g *growth) same(before count) {
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
