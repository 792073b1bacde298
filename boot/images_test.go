package boot_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/boot"
	"berth/image"
	"berth/internal/testutil"
	"berth/internal/vm"
)

// imagesConfig: first's image is a file; second's is a FIFO, whose open
// blocks until something opens it for writing — only first does, through
// a bind of the FIFO's directory.
const imagesConfig = `
[[container]]
name = "first"
image = "bb.tar.zst"
command = ["sh", "-c", "echo first runs; echo > /pipe/slow.img"]
[[container.mount]]
source = "%s/pipe"
target = "/pipe"

[[container]]
name = "second"
image = "pipe/slow.img"
command = ["true"]
`

// TestBootStartsContainersAsImagesAreReady runs berth boot on this host
// with two containers, the second one's image a FIFO that only the first
// container writes to: reading the second image waits for the first
// container. berth must start a container as soon as its image is ready,
// while it readies the others: had it readied every image before the
// first start, it would wait forever. The FIFO is no image — second then
// fails, saying so — and berth boot ends.
func TestBootStartsContainersAsImagesAreReady(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root: namespaces, mounts and cgroups are real")
	}
	dir, berth, cfg := fifoImageBoot(t, func(dir string) string { return fmt.Sprintf(imagesConfig, dir) })
	var out bytes.Buffer
	cmd := exec.Command(berth, "boot", "--config", cfg, "--state", filepath.Join(dir, "state"), "--socket", filepath.Join(dir, "berth.sock"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute): // a hang guard, not a timing check
		cmd.Process.Kill()
		<-done
		t.Fatalf("berth boot still runs: it waits for the second image before starting the first container\n%s", out.String())
	}
	log := out.String()
	if err == nil {
		t.Errorf("berth boot exited 0, but second cannot have started\n%s", log)
	}
	// The loop reports second's image after it has started first (it
	// reports images between starts); first's output may come later.
	started, fails := strings.Index(log, "container first started"), strings.Index(log, "container second: image: ")
	if started < 0 || fails < started || !strings.Contains(log[fails:], "slow.img: not a regular file") ||
		!strings.Contains(log, "first | first runs") {
		t.Errorf("want first started and its output, second failing on its image after, not a regular file:\n%s", log)
	}
}

// oneCPUConfig: first's image is a file; second's a FIFO, which berth
// opens to read when it readies second's image.
const oneCPUConfig = `
[[container]]
name = "first"
image = "bb.tar.zst"
command = ["echo", "first runs"]

[[container]]
name = "second"
image = "pipe/slow.img"
command = ["true"]
`

// TestBootOneCPUStartsBeforeNextImage runs berth boot on one CPU
// (taskset), where readying the next image while a container starts only
// delays that start: berth must start first before it begins readying
// second's image. The test sees berth begin — it opens second's image, a
// FIFO, for reading — and berth's log line saying first started must be
// stamped before that moment (the lines reach the log from a queue, in
// order, stamped as they are logged: the line itself may come later).
// On more CPUs the two overlap (the test above); here they must not.
func TestBootOneCPUStartsBeforeNextImage(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root: namespaces, mounts and cgroups are real")
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		t.Fatal("needs taskset (util-linux) to run berth on one CPU")
	}
	dir, berth, cfg := fifoImageBoot(t, func(string) string { return oneCPUConfig })
	fifo := filepath.Join(dir, "pipe", "slow.img")
	logPath := filepath.Join(dir, "boot.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(taskset, "-c", "0", berth, "boot", "--config", cfg, "--state", filepath.Join(dir, "state"), "--socket", filepath.Join(dir, "berth.sock"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// A writer's non-blocking open succeeds once berth has the FIFO open
	// for reading: it has begun readying second's image.
	var w int
	for deadline := time.Now().Add(2 * time.Minute); ; { // a hang guard, not a timing check
		if w, err = unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			break
		}
		if err != unix.ENXIO || time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			log, _ := os.ReadFile(logPath)
			t.Fatalf("open %s for writing: %v\n%s", fifo, err, log)
		}
		time.Sleep(time.Millisecond)
	}
	opened := boot.Uptime() // the clock of the log's stamps
	unix.Close(w)           // second's image is empty: it fails, and berth boot ends
	select {
	case <-done:
	case <-time.After(2 * time.Minute): // a hang guard, not a timing check
		cmd.Process.Kill()
		<-done
		t.Fatalf("berth boot still runs")
	}
	all, _ := os.ReadFile(logPath)
	if at, ok := stampOf(string(all), "container first started"); !ok || at > opened {
		t.Errorf("berth began readying second's image (at %.6f) before first had started, on one CPU:\n%s", opened, all)
	}
	if !strings.Contains(string(all), "container second: image: ") {
		t.Errorf("want second failing on its image:\n%s", all)
	}
}

// fifoImageBoot makes a directory with berth built for this host, a
// busybox image bb.tar.zst, a FIFO pipe/slow.img and berth.toml holding
// config(dir), and returns the directory, berth and the config's path.
func fifoImageBoot(t *testing.T, config func(dir string) string) (dir, berth, cfg string) {
	t.Helper()
	dir = t.TempDir()
	berth, err := vm.BuildBerth(testutil.RepoRoot(), runtime.GOARCH, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := image.Pack(testutil.BusyboxRootfs(t), filepath.Join(dir, "bb.tar.zst"), image.PackOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "pipe"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "pipe", "slow.img"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(dir, "berth.toml")
	if err := os.WriteFile(cfg, []byte(config(dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, berth, cfg
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
