// Command mem measures PID 1's memory, against the target of issue 11:
// at most 8 MiB at any steady state, on this host as on a 64 MB board.
//
// On this host it runs `berth boot` as it is run for development (PID 1's
// sequence minus the machine-wide steps, with PID 1's collector settings)
// with two containers: web, which sleeps, and crash, which exits 1 at
// once, with restart = "always" and restart_delay = "0s", while a file
// the bench creates is there. It samples berth's memory with both
// containers running — idle — then makes crash restart until berth ps
// counts -restarts restarts, removes the file so that the next start
// stays up, and samples again with both running. Each phase takes
// several samples after a settle period and keeps the largest.
//
// In QEMU (TCG) it boots berth as PID 1 with the same two containers on
// a 64 MB board: 32-bit arm (-M virt, Debian's armmp-lpae kernel) with
// -m 64. Debian's amd64 kernel cannot unpack berth's initramfs below
// about 112 MB (it panics out of memory in populate_rootfs), so a 64 MB
// amd64 guest cannot be measured; -guest-arch amd64 -guest-mem 128 runs
// one. In the guest, web drives the same sequence through berth's control
// socket and prints berth status, whose memory figures berth reads from
// its own /proc/self/status: the guest's /proc/1/status (guest.go).
//
// "PID 1's memory" is VmRSS, as issue 11 measured it: berth's anonymous
// pages plus the pages of its binary it has mapped (RssFile). Both parts,
// PSS and the Go runtime's figures are printed beside it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"berth/bench/internal/results"
	"berth/boot"
	"berth/image"
	"berth/internal/busybox"
)

// targetMiB is issue 11's: PID 1's RSS at any steady state.
const targetMiB = 8

// options are the command's flags.
type options struct {
	repo, berth  string
	runs         int
	restarts     int
	guestRuns    int
	guestRestart int
	settle       time.Duration
	samples      int
	guestMem     int
	guestArch    string
	guestAppend  []string
}

func main() {
	var o options
	flag.StringVar(&o.repo, "repo", ".", "berth checkout")
	flag.StringVar(&o.berth, "berth", "out/berth-linux-"+runtime.GOARCH, "berth binary run on this host")
	flag.IntVar(&o.runs, "n", 3, "runs of each part")
	flag.IntVar(&o.restarts, "restarts", 600, "restarts of the crash container before the second samples")
	flag.IntVar(&o.guestRuns, "guest-n", 1, "boots of the 64 MB QEMU guest")
	flag.IntVar(&o.guestRestart, "guest-restarts", 600, "restarts in the QEMU guest")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "wait before sampling a steady state")
	flag.IntVar(&o.samples, "samples", 5, "samples of each steady state, one a second; the largest is kept")
	flag.StringVar(&o.guestArch, "guest-arch", "arm", "the QEMU guest's architecture")
	flag.IntVar(&o.guestMem, "guest-mem", 64, "the QEMU guest's memory in `MB`")
	appendArg := flag.String("guest-append", "", "added to the guest kernel's command line")
	only := flag.String("only", "", "comma-separated parts: host, qemu (default both), text (what PID 1 ran against what it maps: only when named)")
	jsonOut := flag.String("json", "", "also write every figure to `FILE` (JSON, for go run ./bench/compare; make bench names it)")
	flag.Parse()
	o.guestAppend = strings.Fields(*appendArg)
	rec := results.New("mem")
	part := func(name string) bool { return *only == "" || slices.Contains(strings.Split(*only, ","), name) }
	err := func() error {
		dir, err := os.MkdirTemp("", "berth-bench-mem-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if part("host") {
			if err := benchHost(o, dir, rec); err != nil {
				return fmt.Errorf("host: %w", err)
			}
		}
		if *only != "" && part("text") {
			if err := benchText(o, dir); err != nil {
				return fmt.Errorf("text: %w", err)
			}
		}
		if part("qemu") {
			if err := benchGuest(o, dir, rec); err != nil {
				return fmt.Errorf("qemu: %w", err)
			}
		}
		if *jsonOut != "" {
			return rec.Write(*jsonOut)
		}
		return nil
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench mem:", err)
		os.Exit(1)
	}
}

// crashScript is the crash container: it exits 1 at once while /ctl/go
// is there, and otherwise stays up.
const crashScript = `if [ -e /ctl/go ]; then echo "crash: exiting"; exit 1; fi
echo "crash: up"
exec sleep 1000000
`

// config is the two containers, web and crash, named memweb and memcrash
// so as not to meet another berth's on this host (a cgroup of the same
// name is taken over); web runs webCmd, crash mounts ctl.
func config(img, ctl string, webCmd []string, webMounts string) string {
	cmd, _ := json.Marshal(webCmd)
	return fmt.Sprintf(`[[container]]
name = "memweb"
image = %q
command = %s
stop_timeout = "1s"
%s
[[container]]
name = "memcrash"
image = %q
command = ["/bin/sh", "/crash.sh"]
restart = "always"
restart_delay = "0s"
stop_timeout = "1s"
[[container.mount]]
source = %q
target = "/ctl"
`, img, cmd, webMounts, img, ctl)
}

// packImage packs a busybox image for arch with files added.
func packImage(repo, arch, dir string, files map[string]string) (string, error) {
	rootfs := filepath.Join(dir, "rootfs-"+arch)
	if err := busybox.Rootfs(repo, arch, rootfs, files); err != nil {
		return "", err
	}
	img := filepath.Join(dir, "mem-"+arch+".tar.zst")
	return img, image.Pack(rootfs, img, image.PackOptions{})
}

// sample is one reading of berth's memory.
type sample struct {
	boot.MemoryInfo
	restarts int
}

// hostSetup packs the host part's image and writes its config under
// dir. It returns what every run of berth boot on this host shares; each
// run sets its own dir.
func hostSetup(o options, dir string) (hostRun, error) {
	berth, err := filepath.Abs(o.berth)
	if err != nil {
		return hostRun{}, err
	}
	img, err := packImage(o.repo, runtime.GOARCH, dir, map[string]string{"crash.sh": crashScript})
	if err != nil {
		return hostRun{}, err
	}
	ctl := filepath.Join(dir, "ctl")
	if err := os.MkdirAll(ctl, 0o755); err != nil {
		return hostRun{}, err
	}
	cfg := filepath.Join(dir, "host.toml")
	if err := os.WriteFile(cfg, []byte(config(img, ctl, []string{"sleep", "1000000"}, "")), 0o644); err != nil {
		return hostRun{}, err
	}
	return hostRun{o: o, berth: berth, cfg: cfg, ctl: ctl}, nil
}

// benchHost runs the host part o.runs times and reports it.
func benchHost(o options, dir string, rec *results.Set) error {
	base, err := hostSetup(o, dir)
	if err != nil {
		return err
	}
	var idle, after []sample
	var took []time.Duration
	for r := 0; r < o.runs; r++ {
		h := base
		h.dir = filepath.Join(dir, fmt.Sprintf("run%d", r))
		i, a, d, err := h.run()
		if err != nil {
			return fmt.Errorf("run %d: %w", r+1, err)
		}
		idle, after, took = append(idle, i), append(after, a), append(took, d)
	}
	fmt.Printf("PID 1's memory, berth boot on this host (two containers; the largest of %d samples %s after each steady state), %d runs:\n",
		o.samples, o.settle, o.runs)
	report("host", fmt.Sprintf("after %d restarts", o.restarts), idle, after, rec)
	fmt.Printf("  %d restarts took %s (median)\n\n", o.restarts, medianDur(took).Round(time.Millisecond))
	return nil
}

// hostRun is one run of berth boot on this host.
type hostRun struct {
	o               options
	berth, cfg, ctl string
	dir, sock       string
	cmd             *exec.Cmd
	log             *os.File
	pid             int
}

// timeLimit bounds the wait for both containers to run.
const timeLimit = time.Minute

func (h *hostRun) run() (idle, after sample, took time.Duration, err error) {
	if err = h.begin(nil); err != nil {
		return
	}
	defer h.stop()
	if err = h.waitRunning(0, timeLimit); err != nil {
		return
	}
	if idle, err = h.steady(); err != nil {
		return
	}
	start := time.Now()
	if err = os.WriteFile(filepath.Join(h.ctl, "go"), nil, 0o644); err != nil {
		return
	}
	if _, err = h.ctlCmd("restart", "memcrash"); err != nil {
		return
	}
	if err = h.waitRestarts(h.o.restarts, 30*time.Minute); err != nil {
		return
	}
	took = time.Since(start)
	if err = os.Remove(filepath.Join(h.ctl, "go")); err != nil {
		return
	}
	if err = h.waitRunning(h.o.restarts, timeLimit); err != nil {
		return
	}
	after, err = h.steady()
	return
}

// begin starts berth boot, its environment's with env added, its output
// in the run's boot.log.
func (h *hostRun) begin(env []string) error {
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return err
	}
	h.sock = filepath.Join(h.dir, "berth.sock")
	_ = os.Remove(filepath.Join(h.ctl, "go"))
	log, err := os.Create(filepath.Join(h.dir, "boot.log"))
	if err != nil {
		return err
	}
	h.log = log
	h.cmd = exec.Command(h.berth, "boot", "--config", h.cfg, "--state", filepath.Join(h.dir, "state"), "--socket", h.sock)
	h.cmd.Env = append(os.Environ(), env...)
	h.cmd.Stdout, h.cmd.Stderr = h.log, h.log
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := h.cmd.Start(); err != nil {
		log.Close()
		return err
	}
	h.pid = h.cmd.Process.Pid
	return nil
}

// stop powers berth boot off and waits for it.
func (h *hostRun) stop() {
	if _, err := h.ctlCmd("poweroff"); err != nil {
		_ = h.cmd.Process.Kill()
	}
	_ = h.cmd.Wait()
	h.log.Close()
}

// ctlCmd runs a control verb of the berth CLI against this berth boot.
func (h *hostRun) ctlCmd(args ...string) ([]byte, error) {
	c := exec.Command(h.berth, args...)
	c.Env = append(os.Environ(), "BERTH_SOCKET="+h.sock)
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("berth %s: %w (%s)", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// ps is the state and restart count of each container, by name.
func (h *hostRun) ps() (map[string]boot.Process, error) {
	out, err := h.ctlCmd("ps", "--json")
	if err != nil {
		return nil, err
	}
	var list []boot.Process
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("berth ps --json: %w", err)
	}
	m := map[string]boot.Process{}
	for _, c := range list {
		m[c.Name] = c
	}
	return m, nil
}

// waitRunning waits until both containers run, crash with at least
// restarts restarts and for a second at least (it stayed up), or fails
// after limit.
func (h *hostRun) waitRunning(restarts int, limit time.Duration) error {
	return h.poll(limit, func(m map[string]boot.Process) bool {
		return m["memweb"].State == "running" && m["memcrash"].State == "running" &&
			m["memcrash"].Restarts >= restarts && m["memcrash"].UptimeSec >= 1
	}, "both containers running")
}

// waitRestarts waits until crash has restarted n times.
func (h *hostRun) waitRestarts(n int, limit time.Duration) error {
	return h.poll(limit, func(m map[string]boot.Process) bool { return m["memcrash"].Restarts >= n },
		fmt.Sprintf("%d restarts", n))
}

func (h *hostRun) poll(limit time.Duration, done func(map[string]boot.Process) bool, what string) error {
	deadline := time.Now().Add(limit)
	for {
		m, err := h.ps()
		if err == nil && done(m) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s after %s (last: %v, %v); see %s", what, limit, m, err, h.log.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// steady waits o.settle, then takes o.samples samples a second apart and
// returns the one with the largest RSS.
func (h *hostRun) steady() (sample, error) {
	time.Sleep(h.o.settle)
	var best sample
	for i := 0; i < h.o.samples; i++ {
		if i > 0 {
			time.Sleep(time.Second)
		}
		s, err := h.sample()
		if err != nil {
			return best, err
		}
		if s.RSS > best.RSS {
			best = s
		}
	}
	return best, nil
}

// sample reads berth's memory: the kernel's figures from /proc/PID, the
// Go runtime's from berth status --json (asked after /proc is read).
func (h *hostRun) sample() (sample, error) {
	var s sample
	proc := fmt.Sprintf("/proc/%d/", h.pid)
	if err := readProc(proc+"status", map[string]*int64{"VmRSS": &s.RSS, "RssAnon": &s.Anon, "RssFile": &s.File, "RssShmem": &s.Shmem, "VmHWM": &s.HWM}); err != nil {
		return s, err
	}
	if err := readProc(proc+"smaps_rollup", map[string]*int64{"Pss": &s.PSS}); err != nil {
		return s, err
	}
	out, err := h.ctlCmd("status", "--json")
	if err != nil {
		return s, err
	}
	var st boot.Status
	if err := json.Unmarshal(out, &st); err != nil {
		return s, fmt.Errorf("berth status --json: %w", err)
	}
	kernel := s.MemoryInfo
	s.MemoryInfo = st.Memory
	s.RSS, s.Anon, s.File, s.Shmem, s.HWM, s.PSS = kernel.RSS, kernel.Anon, kernel.File, kernel.Shmem, kernel.HWM, kernel.PSS
	m, err := h.ps()
	if err != nil {
		return s, err
	}
	s.restarts = m["memcrash"].Restarts
	return s, nil
}

// readProc reads "Key: N kB" lines of a /proc file into want, in bytes.
func readProc(path string, want map[string]*int64) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if p := want[k]; ok && p != nil {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				return fmt.Errorf("%s: %s: %w", path, line, err)
			}
			*p = kb << 10
		}
	}
	return nil
}

// report prints the samples of one part, run by run, the medians, and
// the target, judged on the largest RSS of every run: PID 1's memory at
// a steady state is at most that.
func report(part, afterName string, idle, after []sample, rec *results.Set) {
	fmt.Printf("  %-22s %8s %8s %8s %8s %8s %8s %8s %8s %6s\n", "KiB", "RSS", "anon", "file", "shmem", "PSS", "heap", "stacks", "go held", "gs")
	row := func(name string, s sample) {
		fmt.Printf("  %-22s %8d %8d %8d %8d %8d %8d %8d %8d %6d\n", name, s.RSS>>10, s.Anon>>10, s.File>>10, s.Shmem>>10, s.PSS>>10,
			s.GoHeapObjects>>10, s.GoStacks>>10, s.GoHeld>>10, s.Goroutines)
	}
	for i := range idle {
		row(fmt.Sprintf("run %d idle", i+1), idle[i])
		row(fmt.Sprintf("run %d after", i+1), after[i])
	}
	for _, ph := range []struct {
		name string
		s    []sample
	}{{"idle", idle}, {afterName, after}} {
		m := medianSample(ph.s)
		row("median "+strings.Fields(ph.name)[0], m)
		for _, f := range []struct {
			name string
			v    int64
		}{{"RSS", m.RSS}, {"anon", m.Anon}, {"file", m.File}, {"shmem", m.Shmem}, {"PSS", m.PSS},
			{"Go heap objects", m.GoHeapObjects}, {"Go stacks", m.GoStacks}, {"Go held", m.GoHeld}} {
			rec.Add(part+" / "+ph.name+" / "+f.name, float64(f.v>>10), "KiB")
		}
		rec.Add(part+" / "+ph.name+" / goroutines", float64(m.Goroutines), "")
	}
	worst := func(s []sample) int64 {
		var w int64
		for _, x := range s {
			w = max(w, x.RSS)
		}
		return w
	}
	wi, wa := worst(idle), worst(after)
	verdict := "met"
	if max(wi, wa) > targetMiB<<20 {
		verdict = "NOT met"
	}
	fmt.Printf("  target (issue 11): PID 1's RSS <= %d MiB at any steady state: idle %.1f MiB, %s %.1f MiB (largest of the runs): %s\n",
		targetMiB, float64(wi)/(1<<20), afterName, float64(wa)/(1<<20), verdict)
	var anon int64
	for _, x := range append(append([]sample(nil), idle...), after...) {
		anon = max(anon, x.Anon)
	}
	fmt.Printf("  of which anonymous (what PID 1 adds beyond its binary's pages): at most %.1f MiB\n", float64(anon)/(1<<20))
	rec.Add(part+" / target / largest anonymous", float64(anon>>10), "KiB")
	rec.Add(part+" / target / largest RSS", float64(max(wi, wa)>>10), "KiB")
	rec.Add(part+" / target / margin", float64((targetMiB<<20-max(wi, wa))>>10), "KiB")
}

// medianSample is each figure's median over the samples.
func medianSample(s []sample) sample {
	med := func(f func(sample) int64) int64 {
		v := make([]int64, len(s))
		for i, x := range s {
			v[i] = f(x)
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[len(v)/2]
	}
	var m sample
	m.RSS = med(func(x sample) int64 { return x.RSS })
	m.Anon = med(func(x sample) int64 { return x.Anon })
	m.File = med(func(x sample) int64 { return x.File })
	m.Shmem = med(func(x sample) int64 { return x.Shmem })
	m.PSS = med(func(x sample) int64 { return x.PSS })
	m.GoHeapObjects = med(func(x sample) int64 { return x.GoHeapObjects })
	m.GoStacks = med(func(x sample) int64 { return x.GoStacks })
	m.GoHeld = med(func(x sample) int64 { return x.GoHeld })
	m.Goroutines = med(func(x sample) int64 { return x.Goroutines })
	return m
}

func medianDur(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
