// Command unpack measures unpacking a Debian root filesystem into tmpfs:
// `berth image unpack` of a berth image side by side with `tar --zstd -xf`
// (GNU tar and zstd), plain `tar -xf` of the uncompressed tar (the floor),
// and, for an OCI layout of the same tree, berth against `umoci unpack`.
// Tools alternate within each run; it prints medians of wall time, CPU
// time and context switches, ratios against the targets, peak RSS
// (ru_maxrss of the child), the image sizes, berth's breakdown from
// unpacks in this process (breakdown.go), and the time to read one file
// from the middle of the image through mmapfs against decoding the whole
// stream. For the minbase tree it also runs the
// 32-bit arm berth (reading the image through windows) against Debian's
// armhf tar and zstd, both under qemu-arm (arm.go).
//
// The trees are a bookworm minbase and a larger one (~1.8 GB), built with
// debootstrap on the first run and cached in .cache/bench/.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"berth/bench/internal/results"
)

// options are the command's flags.
type options struct {
	berth    string // the berth binary measured
	baseline string // another berth binary measured beside it, or ""
	cache    string
	only     string
	n        int
	oci      bool
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 5, "timed runs per tool (alternating)")
	flag.StringVar(&o.berth, "berth", "out/berth-linux-"+runtime.GOARCH, "berth binary")
	flag.StringVar(&o.baseline, "baseline", "", "another berth `binary` (an older build) timed in the same runs, on an image it packs itself")
	flag.StringVar(&o.cache, "cache", ".cache/bench", "where rootfs trees and inputs are cached")
	flag.StringVar(&o.only, "only", "", "run only this tree (minbase or large)")
	flag.BoolVar(&o.oci, "oci", true, "also time the OCI layout (berth against umoci)")
	armRun := flag.Bool("arm", true, "also run the arm berth and armhf tar under qemu-arm (minbase only)")
	berthArm := flag.String("berth-arm", "out/berth-linux-arm", "arm berth binary")
	sysroot := flag.String("armhf-sysroot", ".cache/deb/armhf/sysroot", "armhf tar and zstd (make bench-armhf)")
	out := results.Flag("unpack") // -json FILE: what it prints, as figures for bench/compare
	flag.Parse()
	var a *arm
	if *armRun {
		a = &arm{}
		a.berth, _ = filepath.Abs(*berthArm)
		a.sysroot, _ = filepath.Abs(*sysroot)
	}
	if err := run(o, a); err != nil {
		fmt.Fprintln(os.Stderr, "bench unpack:", err)
		os.Exit(1)
	}
	out.Save()
}

func run(o options, a *arm) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (debootstrap, tmpfs, ownership)")
	}
	for _, t := range []string{"debootstrap", "tar", "zstd", "umoci"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is missing (make bench-deps installs it)", t)
		}
	}
	o.berth, _ = filepath.Abs(o.berth)
	o.cache, _ = filepath.Abs(o.cache)
	if o.baseline != "" {
		o.baseline, _ = filepath.Abs(o.baseline)
	}
	tmpfs, unmount, err := mountTmpfs("6g")
	if err != nil {
		return err
	}
	defer unmount()
	if a != nil {
		if err := a.prepare(tmpfs); err != nil {
			return err
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE, syscall.SIGHUP)
	go func() { // leave no tmpfs behind when interrupted
		<-sig
		unmount()
		os.Exit(130)
	}()
	fmt.Printf("bench unpack: %d runs per tool, alternating, into tmpfs; %s, %d CPUs\n", o.n, runtime.GOARCH, runtime.NumCPU())
	for _, spec := range specs {
		if o.only != "" && spec.name != o.only {
			continue
		}
		in, err := prepare(o.cache, o.berth, o.baseline, spec)
		if err != nil {
			return err
		}
		if err := benchOne(in, o, tmpfs); err != nil {
			return err
		}
		if a != nil && spec.name == "minbase" {
			if err := benchArm(in, a, tmpfs, o.n); err != nil {
				return err
			}
		}
	}
	return nil
}

// benchOne measures one tree.
func benchOne(in *inputs, o options, tmpfs string) error {
	tools := []tool{
		{name: "berth image unpack", argv: func(d string) []string { return []string{o.berth, "image", "unpack", in.berth, d} }},
		{name: "tar --zstd -xf", mkdest: true, argv: func(d string) []string { return []string{"tar", "--zstd", "-xf", in.zst, "-C", d} }},
		{name: "tar -xf (uncompressed)", mkdest: true, argv: func(d string) []string { return []string{"tar", "-xf", in.tar, "-C", d} }},
	}
	if o.baseline != "" {
		tools = append(tools, tool{name: "baseline image unpack", argv: func(d string) []string {
			return []string{o.baseline, "image", "unpack", in.baseImage, d}
		}})
	}
	if o.oci {
		tools = append(tools, tool{name: "berth image unpack (OCI)", argv: func(d string) []string {
			return []string{o.berth, "image", "unpack", in.layout + ":bench", d}
		}}, tool{name: "umoci unpack (OCI)", bundle: true, argv: func(d string) []string {
			return []string{"umoci", "unpack", "--image", in.layout + ":bench", d}
		}})
	}
	if err := checkSame(in, tools, tmpfs); err != nil {
		return err
	}
	load := loadAvg()
	res, err := runAll(tools, tmpfs, o.n)
	if err != nil {
		return err
	}
	report(in, tools, res, load)
	if err := breakdown(in, tmpfs, o.n); err != nil {
		return err
	}
	return readOne(in, o.berth, o.n)
}

// checkSame unpacks once with berth and with tar (which also warms the
// page cache) and compares the trees.
func checkSame(in *inputs, tools []tool, tmpfs string) error {
	a, b := filepath.Join(tmpfs, "check-berth"), filepath.Join(tmpfs, "check-tar")
	defer os.RemoveAll(a)
	defer os.RemoveAll(b)
	os.Mkdir(b, 0o755)
	if out, err := exec.Command(tools[0].argv(a)[0], tools[0].argv(a)[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("berth: %v\n%s", err, out)
	}
	if out, err := exec.Command("tar", "-xf", in.tar, "-C", b).CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %v\n%s", err, out)
	}
	if err := compareTrees(a, b); err != nil {
		return fmt.Errorf("berth's tree differs from tar's: %w", err)
	}
	for _, t := range tools {
		if err := runOnce(t, tmpfs, nil); err != nil { // warm-up
			return err
		}
	}
	return nil
}

// report prints one tree's table and the target checks. Besides wall
// time it shows each tool's CPU time (user and system, its children
// included) and context switches, voluntary (it slept) and involuntary
// (another task took its CPU): on a busy machine the wall times follow
// CPU time more than parallelism.
func report(in *inputs, tools []tool, res []result, load string) {
	mb := func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	fmt.Printf("\n== %s: %d entries; tar %s, zstd -3 (one frame) %s, berth image %s (%+.2f%% vs zstd -3); load average %s\n",
		in.name, in.entries, mb(in.tarBytes), mb(in.zstBytes), mb(in.berthSize),
		100*(float64(in.berthSize)/float64(in.zstBytes)-1), load)
	fmt.Printf("%-26s %8s %8s %8s %8s %7s %8s %13s %9s\n", "tool", "median", "min", "max", "vs berth", "CPU", "CPU vs", "ctx sw v/inv", "peak RSS")
	base, baseCPU := res[0].median(), median(res[0].cpu)
	for i, t := range tools {
		r := res[i]
		fmt.Printf("%-26s %7.3fs %7.3fs %7.3fs %7.2fx %6.3fs %7.2fx %6d/%-6d %5d MiB\n", t.name,
			r.median().Seconds(), slices.Min(r.times).Seconds(), slices.Max(r.times).Seconds(),
			r.median().Seconds()/base.Seconds(), median(r.cpu).Seconds(), median(r.cpu).Seconds()/baseCPU.Seconds(),
			median(r.vcsw), median(r.ivcsw), r.maxRSS()/1024)
	}
	check := func(what string, got, limit float64, unit string) {
		verdict := "met"
		if got > limit {
			verdict = "NOT met"
		}
		fmt.Printf("  %-44s %7.3f%s (target ≤ %g%s): %s\n", what, got, unit, limit, unit, verdict)
	}
	by := func(name string) time.Duration {
		for i, t := range tools {
			if t.name == name {
				return res[i].median()
			}
		}
		return 0
	}
	zst, tar := by("tar --zstd -xf"), by("tar -xf (uncompressed)")
	check("berth / tar --zstd -xf", base.Seconds()/zst.Seconds(), 0.50, "")
	check("berth / tar -xf (uncompressed)", base.Seconds()/tar.Seconds(), 0.95, "")
	check("berth peak RSS", float64(res[0].maxRSS())/1024, 64, " MiB")
	check("berth image size / zstd -3 one frame", float64(in.berthSize)/float64(in.zstBytes), 1.03, "")
	if b := by("baseline image unpack"); b > 0 {
		fmt.Printf("  baseline / tar --zstd -xf: %.3f, baseline / tar -xf: %.3f, berth / baseline: %.3f\n",
			b.Seconds()/zst.Seconds(), b.Seconds()/tar.Seconds(), base.Seconds()/b.Seconds())
	}
	if b := by("berth image unpack (OCI)"); b > 0 {
		fmt.Printf("  berth (OCI) / umoci unpack: %.2f\n", b.Seconds()/by("umoci unpack (OCI)").Seconds())
	}
}

// loadAvg is the machine's load average over 1, 5 and 15 minutes.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// readOne times reading the middle file through mmapfs (berth image cat)
// against extracting it from the zstd stream (tar reads the whole stream).
func readOne(in *inputs, berth string, n int) error {
	cmds := []struct {
		name string
		argv []string
	}{
		{"berth image cat (mmapfs)", []string{berth, "image", "cat", in.berth, in.middle}},
		{"tar --zstd -xOf (stream)", []string{"tar", "--zstd", "-xOf", in.zst, "./" + in.middle}},
	}
	var med [2]time.Duration
	for k, c := range cmds {
		var r result
		for range n + 1 {
			start := time.Now()
			out, err := exec.Command(c.argv[0], c.argv[1:]...).Output()
			if err != nil || len(out) == 0 {
				return fmt.Errorf("%s: %v (%d bytes)", strings.Join(c.argv, " "), err, len(out))
			}
			r.times = append(r.times, time.Since(start))
		}
		r.times = r.times[1:] // the first warms the cache
		med[k] = r.median()
	}
	fmt.Printf("  one file from the middle (%s): mmapfs %.1f ms, whole stream %.1f ms (%.0fx)\n",
		in.middle, ms(med[0]), ms(med[1]), med[1].Seconds()/med[0].Seconds())
	return nil
}

func ms(d time.Duration) float64 { return d.Seconds() * 1000 }
