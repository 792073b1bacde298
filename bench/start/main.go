// Command start measures container start-to-exit latency of /bin/true:
// berth side by side with crun, runc and bubblewrap, alternating, in one
// run, with the same busybox rootfs and an equivalent config. It prints
// medians and ratios, berth's own breakdown (BERTH_TRACE), supervised
// starts under berth boot (the supervisor's decision to the workload's
// exec) against crun, berth exec into a running container against runc
// exec, berth with net = "bridge" against net = "none" with both
// breakdowns, the smallest memory limit each runtime starts under, and
// berth's peak RSS; -only picks some of these parts.
//
// crun refuses this host's hybrid cgroup layout, so crun and runc run
// inside `unshare -m` with /sys/fs/cgroup/unified unmounted; berth runs
// behind the same wrapper, and the wrapper's own time, measured in the
// same run, is subtracted.
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
	"time"

	"berth/bench/internal/results"
	"berth/container"
	"berth/container/seccomp"
	"berth/internal/busybox"
)

func main() {
	runs := flag.Int("n", 25, "runs per runtime (alternating); supervised starts: -n rounded up to boots of 5")
	berth := flag.String("berth", "out/berth-linux-"+runtime.GOARCH, "berth binary")
	other := flag.String("other", "", "another berth binary (an earlier build) timed beside -berth in the comparison")
	repo := flag.String("repo", ".", "berth checkout")
	onlyNet := flag.Bool("net", false, "only berth's net = none against net = bridge (same as -only net)")
	only := flag.String("only", "", "comma-separated parts to run: "+strings.Join(allParts, ",")+" (default all)")
	out := results.Flag("start") // -json FILE: what it prints, as figures for bench/compare
	flag.Parse()
	parts := map[string]bool{}
	for _, p := range strings.Split(*only, ",") {
		if p = strings.TrimSpace(p); p != "" {
			if !slices.Contains(allParts, p) {
				fmt.Fprintf(os.Stderr, "bench start: -only %s: want some of %s\n", p, strings.Join(allParts, ","))
				os.Exit(2)
			}
			parts[p] = true
		}
	}
	if *onlyNet {
		parts = map[string]bool{"net": true}
	}
	if len(parts) == 0 {
		for _, p := range allParts {
			parts[p] = true
		}
	}
	if err := run(*repo, *berth, *other, *runs, parts); err != nil {
		fmt.Fprintln(os.Stderr, "bench start: "+err.Error())
		os.Exit(1)
	}
	out.Save()
}

// allParts are the benchmark's parts, in the order they run: berth run
// against the peers, berth's breakdown, supervised starts under berth
// boot, berth exec against runc exec, net = bridge against none, the
// smallest memory limits.
var allParts = []string{"compare", "breakdown", "supervised", "exec", "net", "memory"}

// wrapper is how crun and runc (and, for fairness, berth) run here.
var wrapper = []string{"unshare", "-m", "sh", "-c", "umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$@\"", "wrap"}

type runtimeCmd struct {
	name    string
	wrapped bool
	cmd     func(i int) []string
}

func run(repo, berth, other string, n int, parts map[string]bool) error {
	berth, _ = filepath.Abs(berth)
	work, err := os.MkdirTemp("", "berth-bench-start-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	rootfs := filepath.Join(work, "bundle", "rootfs")
	if err := busybox.Rootfs(repo, runtime.GOARCH, rootfs, nil); err != nil {
		return err
	}
	bundle := filepath.Join(work, "bundle")
	if err := writeOCIConfig(bundle, 64<<20); err != nil {
		return err
	}
	if parts["compare"] {
		floor := filepath.Join(work, "floor")
		if err := buildFloor(repo, floor); err != nil {
			return err
		}
		if err := compare(berth, other, floor, rootfs, bundle, n); err != nil {
			return err
		}
	}
	if parts["breakdown"] {
		none, err := breakdown([]string{berth, "run", "--memory", "64M", "--pids", "64", rootfs, "--", "/bin/true"}, n)
		if err != nil {
			return err
		}
		printBreakdown("berth breakdown (median time since the previous step, berth run without wrapper):", none)
	}
	if parts["supervised"] {
		const perBoot = 5
		if err := supervisedBench(berth, rootfs, bundle, work, (n+perBoot-1)/perBoot, perBoot); err != nil {
			return err
		}
	}
	if parts["exec"] {
		if err := execBench(berth, rootfs, bundle, work, n); err != nil {
			return err
		}
	}
	if parts["net"] {
		if err := bridgeBench(berth, rootfs, n); err != nil {
			return err
		}
	}
	if parts["memory"] {
		return minMemory(berth, rootfs, bundle)
	}
	return nil
}

// compare times berth run against crun, runc and bubblewrap, alternating,
// and prints medians and ratios to crun's net time; other, if set, is
// another berth binary timed the same way. Beside them it times berth
// version and floor, an empty Go program, which split berth run's time
// into the Go runtime's own start, what berth's package set adds to it,
// and the run's own work.
func compare(berth, other, floor, rootfs, bundle string, n int) error {
	rts := []runtimeCmd{
		{"wrapper", false, func(int) []string { return append(append([]string{}, wrapper...), "/bin/true") }},
		{"berth", true, func(int) []string {
			return []string{berth, "run", "--memory", "64M", "--pids", "64", rootfs, "--", "/bin/true"}
		}},
		{"crun", true, func(i int) []string { return []string{"crun", "run", "-b", bundle, fmt.Sprintf("bench-crun-%d", i)} }},
		{"runc", true, func(i int) []string { return []string{"runc", "run", "-b", bundle, fmt.Sprintf("bench-runc-%d", i)} }},
		{"bwrap", false, func(int) []string {
			return []string{"bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", rootfs, "/", "--proc", "/proc", "--dev", "/dev", "/bin/true"}
		}},
		{"berth (no wrapper)", false, func(int) []string {
			return []string{berth, "run", "--memory", "64M", "--pids", "64", rootfs, "--", "/bin/true"}
		}},
		{"berth version", false, func(int) []string { return []string{berth, "version"} }},
		{"empty Go program", false, func(int) []string { return []string{floor} }},
	}
	if other != "" {
		other, _ = filepath.Abs(other)
		rts = append(rts, runtimeCmd{"other berth", true, func(int) []string {
			return []string{other, "run", "--memory", "64M", "--pids", "64", rootfs, "--", "/bin/true"}
		}})
	}
	times := map[string][]time.Duration{}
	// Warm up page caches once per runtime, then alternate.
	for i := -1; i < n; i++ {
		for _, rt := range rts {
			args := rt.cmd(i + 1000)
			if rt.wrapped {
				args = append(append([]string{}, wrapper...), args...)
			}
			d, err := timeCmd(args)
			if err != nil {
				return fmt.Errorf("%s: %w", rt.name, err)
			}
			if i >= 0 {
				times[rt.name] = append(times[rt.name], d)
			}
		}
	}
	wrap := median(times["wrapper"])
	crunNet := median(times["crun"]) - wrap
	fmt.Printf("start-to-exit of /bin/true, %d runs each, alternating (median; p25-p75)\n", n)
	fmt.Printf("%-20s %10s %10s %16s %10s\n", "runtime", "median", "net", "p25-p75", "vs crun")
	for _, rt := range rts {
		ts := times[rt.name]
		m := median(ts)
		net := m
		if rt.wrapped {
			net = m - wrap
		}
		ratio := "-"
		if rt.name != "wrapper" {
			ratio = fmt.Sprintf("%.2fx", float64(net)/float64(crunNet))
		}
		fmt.Printf("%-20s %10s %10s %16s %10s\n", rt.name, ms(m), ms(net), ms(pct(ts, 25))+"-"+ms(pct(ts, 75)), ratio)
	}
	fmt.Printf("(net = median minus the wrapper's median for wrapped runtimes; crun net = %s)\n", ms(crunNet))
	printSplit(times, crunNet)
	return nil
}

// printSplit splits berth run's unwrapped time into the Go runtime's own
// start and exit (an empty Go program), what berth's binary adds to that
// before main (berth version), and the run itself, each as a share of
// crun's net time: the target's budget, seen against its parts.
func printSplit(times map[string][]time.Duration, crunNet time.Duration) {
	run, version, floor := median(times["berth (no wrapper)"]), median(times["berth version"]), median(times["empty Go program"])
	share := func(d time.Duration) string {
		return fmt.Sprintf("%s (%.2fx crun net)", ms(d), float64(d)/float64(crunNet))
	}
	fmt.Printf("berth run without wrapper, split:\n")
	fmt.Printf("  an empty static Go program, start to exit        %s\n", share(floor))
	fmt.Printf("  berth's binary beyond that, start to exit        %s\n", share(version-floor))
	fmt.Printf("  the run itself (berth run - berth version)       %s\n\n", share(run-version))
}

// buildFloor builds bench/start/floor, the empty Go program, as berth is
// built: static, trimmed, stripped.
func buildFloor(repo, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./bench/start/floor")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the empty Go program: %v: %s", err, b)
	}
	return nil
}

// timeCmd runs args and returns its wall time.
func timeCmd(args []string) (time.Duration, error) {
	cmd := exec.Command(args[0], args[1:]...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	t := time.Now()
	err := cmd.Run()
	d := time.Since(t)
	if err != nil {
		return d, fmt.Errorf("%v: %v: %s", args, err, out.String())
	}
	return d, nil
}

// phases collects the time of each step BERTH_TRACE marks, over runs,
// in the order first seen.
type phases struct {
	order []string
	all   map[string][]time.Duration
	peak  map[string]int // peak RSS in KiB, by process
}

func newPhases() *phases {
	return &phases{all: map[string][]time.Duration{}, peak: map[string]int{}}
}

// breakdown runs args with BERTH_TRACE=1 n times.
func breakdown(args []string, n int) (*phases, error) {
	p := newPhases()
	for i := 0; i < n; i++ {
		if err := p.add(args); err != nil {
			return p, err
		}
	}
	return p, nil
}

// add runs args once with BERTH_TRACE=1 and records its steps.
func (p *phases) add(args []string) error {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "BERTH_TRACE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("berth trace run: %v: %s", err, out)
	}
	// Lines: "berth-trace PHASE NANOS" (CLOCK_MONOTONIC, shared by berth
	// and its init, whose lines may interleave): sorted by time.
	type mark struct {
		phase string
		ns    int64
	}
	var marks []mark
	for _, line := range strings.Split(string(out), "\n") {
		var who string
		var kib int
		if _, err := fmt.Sscanf(line, "berth-rss %s %d", &who, &kib); err == nil && kib > p.peak[who] {
			p.peak[who] = kib
		}
		var m mark
		if _, err := fmt.Sscanf(line, "berth-trace %s %d", &m.phase, &m.ns); err == nil {
			marks = append(marks, m)
		}
	}
	sort.Slice(marks, func(i, j int) bool { return marks[i].ns < marks[j].ns })
	for i := 1; i < len(marks); i++ {
		p.record(marks[i].phase, time.Duration(marks[i].ns-marks[i-1].ns))
	}
	return nil
}

// record adds one time of step ph.
func (p *phases) record(ph string, d time.Duration) {
	if _, seen := p.all[ph]; !seen {
		p.order = append(p.order, ph)
	}
	p.all[ph] = append(p.all[ph], d)
}

// median is the median time of step ph, 0 when it was never seen.
func (p *phases) median(ph string) time.Duration { return median(p.all[ph]) }

// printBreakdown prints one run's steps and berth's peak RSS.
func printBreakdown(title string, p *phases) {
	if len(p.order) == 0 {
		fmt.Println("berth breakdown: berth printed no BERTH_TRACE lines")
		return
	}
	fmt.Println(title)
	var total time.Duration
	for _, ph := range p.order {
		total += p.median(ph)
		fmt.Printf("  %-28s %8s\n", ph, ms(p.median(ph)))
	}
	fmt.Printf("  %-28s %8s (from berth's main to the workload's exit and cleanup)\n", "sum", ms(total))
	if p.peak["init"] == 0 {
		// A direct start: the first process shares berth's memory.
		fmt.Printf("berth peak RSS (VmHWM, max over runs): berth run %d KiB, no container init\n\n", p.peak["parent"])
		return
	}
	fmt.Printf("berth peak RSS (VmHWM, max over runs): berth run %d KiB, container init before exec %d KiB\n\n", p.peak["parent"], p.peak["init"])
}

// minMemory bisects the smallest memory limit under which a busybox true
// container starts, for berth, crun and runc.
func minMemory(berth, rootfs, bundle string) error {
	try := map[string]func(limit int64, i int) error{
		"berth": func(limit int64, _ int) error {
			_, err := timeCmd(append(append([]string{}, wrapper...), berth, "run", "--memory", fmt.Sprint(limit), rootfs, "--", "/bin/true"))
			return err
		},
		"crun": func(limit int64, i int) error {
			if err := writeOCIConfig(bundle, limit); err != nil {
				return err
			}
			_, err := timeCmd(append(append([]string{}, wrapper...), "crun", "run", "-b", bundle, fmt.Sprintf("mem-crun-%d", i)))
			return err
		},
		"runc": func(limit int64, i int) error {
			if err := writeOCIConfig(bundle, limit); err != nil {
				return err
			}
			_, err := timeCmd(append(append([]string{}, wrapper...), "runc", "run", "-b", bundle, fmt.Sprintf("mem-runc-%d", i)))
			return err
		},
	}
	fmt.Println("smallest memory limit under which a busybox true container starts (bisection, 64 KiB steps):")
	for _, name := range []string{"berth", "crun", "runc"} {
		lo, hi := int64(0), int64(32<<20) // lo fails, hi works
		if err := try[name](hi, 0); err != nil {
			fmt.Printf("  %-6s does not start even under %d MiB: %v\n", name, hi>>20, err)
			continue
		}
		for i := 1; hi-lo > 64<<10; i++ {
			mid := (lo + hi) / 2 &^ (4<<10 - 1)
			if try[name](mid, i) == nil {
				hi = mid
			} else {
				lo = mid
			}
		}
		fmt.Printf("  %-6s %6d KiB\n", name, hi>>10)
	}
	return writeOCIConfig(bundle, 64<<20)
}

// writeOCIConfig writes a config.json equivalent to berth's defaults: the
// same namespaces, containerd's 9 capabilities in every set, berth's
// default seccomp profile, memory and pids limits, /bin/true.
func writeOCIConfig(bundle string, memory int64) error {
	caps := []string{}
	for _, c := range container.DefaultCaps {
		caps = append(caps, "CAP_"+c)
	}
	prof, err := seccomp.Default().OCI(runtime.GOARCH, container.DefaultCaps)
	if err != nil {
		return err
	}
	cfg := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"terminal": false, "user": map[string]any{"uid": 0, "gid": 0},
			"args": []string{"/bin/true"}, "env": []string{"PATH=/bin"}, "cwd": "/",
			"capabilities":    map[string]any{"bounding": caps, "effective": caps, "permitted": caps},
			"noNewPrivileges": true,
		},
		"root":     map[string]any{"path": "rootfs", "readonly": false},
		"hostname": "bench",
		"mounts": []any{
			map[string]any{"destination": "/proc", "type": "proc", "source": "proc"},
			map[string]any{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			map[string]any{"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			map[string]any{"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			map[string]any{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": []string{"nosuid", "noexec", "nodev"}},
			map[string]any{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": []string{"nosuid", "noexec", "nodev", "ro"}},
			map[string]any{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		"linux": map[string]any{
			"resources": map[string]any{
				"memory":  map[string]any{"limit": memory, "swap": memory},
				"pids":    map[string]any{"limit": 64},
				"devices": []any{map[string]any{"allow": false, "access": "rwm"}},
			},
			"namespaces": []any{
				map[string]any{"type": "pid"}, map[string]any{"type": "network"}, map[string]any{"type": "ipc"},
				map[string]any{"type": "uts"}, map[string]any{"type": "mount"}, map[string]any{"type": "cgroup"},
			},
			"seccomp": prof,
			"maskedPaths": []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"},
			"readonlyPaths": []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	data, err := json.MarshalIndent(cfg, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644)
}

func median(ts []time.Duration) time.Duration { return pct(ts, 50) }

func pct(ts []time.Duration, p int) time.Duration {
	if len(ts) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ts...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }
