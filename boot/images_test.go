package boot_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"berth/boot"
	"berth/image"
	"berth/internal/testutil"
	"berth/internal/vm"
)

// imagesConfig: first's image is a file; second's, slow.img, is held
// by the test: berth's open of it waits until the test lets it go
// (openGate), once first has run.
const imagesConfig = `
[[container]]
name = "first"
image = "bb.tar.zst"
command = ["echo", "first runs"]

[[container]]
name = "second"
image = "slow.img"
command = ["true"]
`

// TestBootStartsContainersAsImagesAreReady runs berth boot on this host
// with two containers, the second one's image held open (openGate) until
// the first container has run: reading the second image waits for the
// first container. berth must start a container as soon as its image is
// ready, while it readies the others: had it readied every image before
// the first start, it would wait forever. slow.img is empty, no image —
// second then fails, saying so — and berth boot ends.
func TestBootStartsContainersAsImagesAreReady(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root: namespaces, mounts, cgroups and fanotify are real")
	}
	dir, berth, cfg := gatedImageBoot(t, imagesConfig)
	gate := openGate(t, filepath.Join(dir, "slow.img"))
	logPath := filepath.Join(dir, "boot.log")
	cmd, done := startBoot(t, berth, dir, cfg, logPath, false)
	waitLog(t, cmd, done, logPath, "first | first runs")
	gate.allow()
	log := waitBoot(t, cmd, done, logPath)
	if cmd.ProcessState.Success() {
		t.Errorf("berth boot exited 0, but second cannot have started\n%s", log)
	}
	// The loop reports second's image after it has started first (it
	// reports images between starts).
	started, fails := strings.Index(log, "container first started"), strings.Index(log, "container second: image: ")
	if started < 0 || fails < started || !strings.Contains(log[fails:], "slow.img") {
		t.Errorf("want first started and its output, second failing on its image after:\n%s", log)
	}
}

// oneCPUConfig: first's image is a file; second's is slow.img, whose
// open the test sees (openGate).
const oneCPUConfig = `
[[container]]
name = "first"
image = "bb.tar.zst"
command = ["echo", "first runs"]

[[container]]
name = "second"
image = "slow.img"
command = ["true"]
`

// TestBootOneCPUStartsBeforeNextImage runs berth boot on one CPU
// (taskset), where readying the next image while a container starts only
// delays that start: berth must start first before it begins readying
// second's image. The test sees berth begin — it opens second's image,
// which a fanotify permission event holds — and berth's log line saying
// first started must be stamped before that moment (the lines reach the
// log from a queue, in order, stamped as they are logged: the line
// itself may come later). On more CPUs the two overlap (the test above);
// here they must not.
func TestBootOneCPUStartsBeforeNextImage(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root: namespaces, mounts, cgroups and fanotify are real")
	}
	dir, berth, cfg := gatedImageBoot(t, oneCPUConfig)
	gate := openGate(t, filepath.Join(dir, "slow.img"))
	logPath := filepath.Join(dir, "boot.log")
	cmd, done := startBoot(t, berth, dir, cfg, logPath, true)
	var opened float64
	select {
	case opened = <-gate.opened:
	case <-time.After(2 * time.Minute): // a hang guard, not a timing check
		cmd.Process.Kill()
		<-done
		log, _ := os.ReadFile(logPath)
		t.Fatalf("berth did not open second's image\n%s", log)
	}
	gate.allow() // second's image is empty: it fails, and berth boot ends
	all := waitBoot(t, cmd, done, logPath)
	if at, ok := stampOf(all, "container first started"); !ok || at > opened {
		t.Errorf("berth began readying second's image (at %.6f) before first had started, on one CPU:\n%s", opened, all)
	}
	if !strings.Contains(all, "container second: image: ") {
		t.Errorf("want second failing on its image:\n%s", all)
	}
}

// gatedImageBoot makes a directory with berth built for this host, a
// busybox image bb.tar.zst, an empty slow.img and berth.toml holding
// config, and returns the directory, berth and the config's path.
func gatedImageBoot(t *testing.T, config string) (dir, berth, cfg string) {
	t.Helper()
	dir = t.TempDir()
	berth, err := vm.BuildBerth(testutil.RepoRoot(), runtime.GOARCH, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := image.Pack(testutil.BusyboxRootfs(t), filepath.Join(dir, "bb.tar.zst"), image.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "slow.img"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(dir, "berth.toml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, berth, cfg
}

// startBoot starts berth boot (on CPU 0 alone with oneCPU), its output to
// logPath; done delivers its end.
func startBoot(t *testing.T, berth, dir, cfg, logPath string, oneCPU bool) (*exec.Cmd, chan error) {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	args := []string{berth, "boot", "--config", cfg, "--state", filepath.Join(dir, "state"), "--socket", filepath.Join(dir, "berth.sock")}
	if oneCPU {
		taskset, err := exec.LookPath("taskset")
		if err != nil {
			t.Fatal("needs taskset (util-linux) to run berth on one CPU")
		}
		args = append([]string{taskset, "-c", "0"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	return cmd, done
}

// waitLog waits until berth boot's log holds s.
func waitLog(t *testing.T, cmd *exec.Cmd, done chan error, logPath, s string) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(10 * time.Millisecond) { // a hang guard, not a timing check
		log, _ := os.ReadFile(logPath)
		if strings.Contains(string(log), s) {
			return
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			log, _ := os.ReadFile(logPath)
			t.Fatalf("no %q: berth waits for the second image before starting the first container\n%s", s, log)
		}
	}
}

// waitBoot waits for berth boot's end and returns its log.
func waitBoot(t *testing.T, cmd *exec.Cmd, done chan error, logPath string) string {
	t.Helper()
	select {
	case <-done:
	case <-time.After(2 * time.Minute): // a hang guard, not a timing check
		cmd.Process.Kill()
		<-done
		log, _ := os.ReadFile(logPath)
		t.Fatalf("berth boot still runs\n%s", log)
	}
	log, _ := os.ReadFile(logPath)
	return string(log)
}

// gate holds every open of a file (a fanotify permission event) until
// allow: opened delivers the time of the first (boot.Uptime, the log's
// clock) as the test sees it.
type gate struct {
	opened chan float64
	open   chan struct{}
}

func (g *gate) allow() { close(g.open) }

// openGate holds the opens of path until the gate's allow.
func openGate(t *testing.T, path string) *gate {
	t.Helper()
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_CONTENT|unix.FAN_CLOEXEC, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		t.Fatalf("fanotify: %v", err)
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD, unix.FAN_OPEN_PERM, unix.AT_FDCWD, path); err != nil {
		unix.Close(fd)
		t.Fatalf("fanotify mark %s: %v", path, err)
	}
	g := &gate{opened: make(chan float64, 1), open: make(chan struct{})}
	stop := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		select {
		case <-g.open:
		default:
			g.allow()
		}
	})
	go func() {
		defer unix.Close(fd)
		buf := make([]byte, 4096)
		first := true
		for {
			n, err := unix.Read(fd, buf)
			if err != nil {
				return
			}
			for off := 0; off+int(unsafe.Sizeof(unix.FanotifyEventMetadata{})) <= n; {
				ev := (*unix.FanotifyEventMetadata)(unsafe.Pointer(&buf[off]))
				if ev.Event_len == 0 {
					break
				}
				off += int(ev.Event_len)
				if first {
					g.opened <- boot.Uptime()
					first = false
				}
				select {
				case <-g.open:
				case <-stop:
				}
				resp := unix.FanotifyResponse{Fd: ev.Fd, Response: unix.FAN_ALLOW}
				unix.Write(fd, (*[unsafe.Sizeof(resp)]byte)(unsafe.Pointer(&resp))[:])
				unix.Close(int(ev.Fd))
			}
		}
	}()
	return g
}

// stampOf returns the stamp of the first log line holding s.
func stampOf(log, s string) (float64, bool) {
	for line := range strings.Lines(log) {
		if !strings.Contains(line, s) {
			continue
		}
		var at float64
		if _, err := fmt.Sscanf(line, "[%f]", &at); err == nil {
			return at, true
		}
	}
	return 0, false
}
