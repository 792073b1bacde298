// Command boot measures berth as PID 1 in QEMU (TCG) on every target
// berth is booted on — amd64, arm64, arm, riscv64 and a Raspberry Pi 3
// (raspi3b) — with the demo config (demo/berth.toml): the time from kernel
// start to berth's start and from berth's start to the first container's
// first output line, beside a 10-line static Go init that only prints
// (bench/boot/hello), and berth's boot between the two, phase by phase
// (console.go); on amd64, against the target of issue 11 and beside
// the floor (bench/boot/floor): an init that does only the steps on the
// path to the first container's first line, booted from the same
// initramfs in berth's place, and the same floor starting its container
// with berth's container package, every default of berth's isolation
// kept (bench/boot/floor/isolated).
// With -against
// it boots a second berth (an older build, say) alternating with the
// checkout's, and prints its breakdown too. On amd64 and arm64 it also
// measures berth's idle RSS with 3 containers running and its memory per
// extra container (from berth status, asked by a management container).
// -json FILE adds every figure to a results file (bench/internal/results).
// -icount N runs QEMU with a guest clock that counts instructions, which
// other work on the host does not disturb.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"berth/appliance"
	"berth/bench/internal/results"
	"berth/image"
	"berth/internal/busybox"
	"berth/internal/vm"
)

// target is one machine to boot: an architecture's QEMU virt machine, or
// a board.
type target struct {
	name, arch, board string
	rss               bool // also measure berth's RSS
}

var targets = []target{
	{name: "amd64", arch: "amd64", rss: true},
	{name: "arm64", arch: "arm64", rss: true},
	{name: "arm", arch: "arm"},
	{name: "riscv64", arch: "riscv64"},
	{name: "raspi3b", arch: "arm64", board: "raspi3b"},
}

// target is issue 11's: on amd64, berth's start to the first container's
// first output line in at most 400 ms.
const (
	targetName = "amd64"
	targetMS   = 400
)

func main() {
	runs := flag.Int("n", 3, "boots per case")
	repo := flag.String("repo", ".", "berth checkout")
	only := flag.String("only", "", "comma-separated targets (default all: amd64,arm64,arm,riscv64,raspi3b)")
	against := flag.String("against", "", "also boot this berth `binary`, built for the targets' one architecture (-only), alternating with the checkout's")
	rss := flag.Bool("rss", true, "also measure berth's RSS on amd64 and arm64")
	icount := flag.String("icount", "", "run QEMU with -icount shift=`N`: the guest's clock counts its instructions, 2^N ns each, whatever else the host runs")
	jsonOut := flag.String("json", "", "also write every figure to `FILE` (JSON, for go run ./bench/compare; make bench names it)")
	flag.StringVar(&kernelAppend, "append", "", "add these `WORDS` to every boot's kernel command line (BERTH_TRACE=1: each container start's steps on the console)")
	flag.StringVar(&consoleDir, "console", "", "also write each berth boot's console to `DIR`/TARGET-berth-N.txt")
	profile := flag.Bool("profile", false, "instead, profile berth's boot on amd64 (QEMU's gdbstub): where the CPU is from berth's first line to the first container output")
	every := flag.Duration("every", 2*time.Millisecond, "with -profile, the time between two samples")
	top := flag.Int("top", 25, "with -profile, how many packages and functions to list")
	stepTop := flag.Int("step-top", 5, "with -profile, how many to list for each step")
	profileFloor := flag.Bool("profile-floor", false, "with -profile, profile the floor with berth's isolation (bench/boot/floor/isolated) instead of berth")
	flag.Parse()
	if *profile {
		if err := profileBoots(*repo, targets[0], *runs, *every, *top, *stepTop, *profileFloor); err != nil {
			fmt.Fprintln(os.Stderr, "bench boot:", err)
			os.Exit(1)
		}
		return
	}
	name := "boot"
	if *icount != "" {
		name += " -icount " + *icount // figures of another clock: kept apart
	}
	rec := results.New(name)
	for _, tg := range targets {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), tg.name) {
			continue
		}
		tg.rss = tg.rss && *rss
		if err := bench(*repo, tg, *runs, *against, *icount, rec); err != nil {
			fmt.Fprintln(os.Stderr, "bench boot:", err)
			os.Exit(1)
		}
	}
	if *jsonOut != "" {
		if err := rec.Write(*jsonOut); err != nil {
			fmt.Fprintln(os.Stderr, "bench boot:", err)
			os.Exit(1)
		}
	}
}

// consoleDir, when set, receives each berth boot's console (-console).
var consoleDir string

// kernelAppend is added to every boot's kernel command line (-append):
// BERTH_TRACE=1 there reaches berth as an environment variable, and each
// container start prints its steps on the console (which then counts a
// container's trace line as its first output).
var kernelAppend string

// saveConsole writes one berth boot's console into consoleDir.
func saveConsole(name string, i, run int, out string) error {
	if consoleDir == "" {
		return nil
	}
	who := "berth"
	if i > 0 {
		who = "against"
	}
	return os.WriteFile(filepath.Join(consoleDir, fmt.Sprintf("%s-%s-%d.txt", name, who, run+1)), []byte(out), 0o644)
}

// machine is what one target boots with.
type machine struct {
	target
	kernel, dtb string
	icount      string // QEMU's -icount shift, "" for none
}

// cfg is the QEMU config of one boot.
func (m machine) cfg(initrd string) vm.Config {
	c := vm.Config{Arch: m.arch, Kernel: m.kernel, Initramfs: initrd, Board: m.board, DTB: m.dtb, Timeout: 10 * time.Minute}
	c.Append = append(c.Append, strings.Fields(kernelAppend)...)
	if m.icount != "" {
		c.ExtraQEMU = []string{"-icount", "shift=" + m.icount}
	}
	return c
}

func bench(repo string, tg target, runs int, against, icount string, rec *results.Set) error {
	dir, err := os.MkdirTemp("", "berth-bench-boot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	m := machine{target: tg, icount: icount}
	if m.kernel, err = appliance.Kernel(repo, tg.arch); err != nil {
		return err
	}
	if b, ok := vm.Boards[tg.board]; ok {
		if m.dtb, err = vm.DeviceTree(repo, tg.arch, b.DTB); err != nil {
			return err
		}
	}
	helloInitrd, err := helloInitramfs(repo, tg.arch, dir)
	if err != nil {
		return err
	}
	berth, img, initrd, err := demoBerth(repo, m, dir)
	if err != nil {
		return err
	}
	initrds := []string{initrd}
	if against != "" {
		initrds = append(initrds, filepath.Join(dir, "against.cpio.zst"))
		if err := demoInitramfs(repo, m, against, img, initrds[1]); err != nil {
			return err
		}
	}
	var floorInitrds []string
	if tg.name == targetName {
		if floorInitrds, err = floorInitramfs(repo, m, img, dir); err != nil {
			return err
		}
	}
	hello, floors, berths, err := bootAll(m, tg.name, helloInitrd, floorInitrds, initrds, runs)
	if err != nil {
		return err
	}
	clock := ""
	if icount != "" {
		clock = ", -icount shift=" + icount
	}
	fmt.Printf("%s (kernel %s), QEMU TCG%s, demo config, %d boots each (medians):\n", tg.name, filepath.Base(m.kernel), clock, runs)
	hk := median(func(c console) float64 { return c.initStart }, hello)
	rec.Add(tg.name+" / kernel start -> init start / hello", hk*1000, "ms")
	for i, boots := range berths {
		who, prefix := "berth", tg.name+" / "
		if i > 0 {
			who, prefix = "berth -against "+filepath.Base(against), tg.name+" / against / "
			fmt.Println()
		}
		report(tg.name, who, prefix, hk, boots, rec)
		if len(floors) > 0 {
			reportFloor(tg.name, who, boots, floors, rec)
		}
	}
	if tg.rss {
		return benchRSS(repo, m, berth, dir, runs, rec)
	}
	fmt.Println()
	return nil
}

// report prints one berth's figures and records them.
func report(name, who, prefix string, hk float64, boots []console, rec *results.Set) {
	bk := median(func(c console) float64 { return c.initStart }, boots)
	fmt.Printf("  kernel start -> init start:  hello %6.0f ms, %s %6.0f ms (%.2fx)\n", hk*1000, who, bk*1000, bk/hk)
	rec.Add(prefix+"kernel start -> init start / berth", bk*1000, "ms")
	out := withOutput(boots)
	if len(out) < len(boots) {
		fmt.Printf("  %d of %d %s boots ended before a container's first output (raspi3b: reset when its watchdog is armed under QEMU 7.2); the figures below are of the others\n",
			len(boots)-len(out), len(boots), who)
		if len(out) == 0 {
			return
		}
		boots = out
	}
	bf := median(toOutput, boots)
	bt := median(func(c console) float64 { return c.firstOutput }, boots)
	fmt.Printf("  %s start -> first container output: %6.0f ms\n", who, bf*1000)
	fmt.Printf("  kernel start -> first output: hello %6.0f ms (its own line), %s %6.0f ms (%.2fx)\n", hk*1000, who, bt*1000, bt/hk)
	rec.Add(prefix+"berth start -> first container output", bf*1000, "ms")
	rec.Add(prefix+"kernel start -> first output / berth", bt*1000, "ms")
	printBreakdown(who+"'s boot", breakdown(boots), rec, prefix)
	if name == targetName {
		verdict := "met"
		if bf*1000 > targetMS {
			verdict = "not met"
		}
		fmt.Printf("  target (issue 11): %s start -> first container output <= %d ms on %s: %.0f ms, %s\n", who, targetMS, targetName, bf*1000, verdict)
	}
}

// bootAll boots each initramfs runs times: hello first, then the
// berths and the floors (if any) taking turns going first, since a boot
// that follows another one was seen slower, whatever it was.
func bootAll(m machine, name, helloInitrd string, floorInitrds, initrds []string, runs int) (hello []console, floors, berths [][]console, err error) {
	berths = make([][]console, len(initrds))
	floors = make([][]console, len(floorInitrds))
	bootFloor := func() error {
		for i, initrd := range floorInitrds {
			out, err := m.boot(initrd, "floor: power off")
			if err != nil {
				return fmt.Errorf("%s: floor: %w\n%s", name, err, out)
			}
			floors[i] = append(floors[i], parse(out))
		}
		return nil
	}
	for r := 0; r < runs; r++ {
		out, err := m.boot(helloInitrd, "hello: init started")
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: hello: %w\n%s", name, err, out)
		}
		hello = append(hello, parse(out))
		if r%2 == 0 {
			if err := bootFloor(); err != nil {
				return nil, nil, nil, err
			}
		}
		for k := range initrds {
			i := (k + r) % len(initrds)
			out, err = m.boot(initrds[i], "berth: power off")
			if err != nil {
				return nil, nil, nil, fmt.Errorf("%s: berth: %w\n%s", name, err, out)
			}
			berths[i] = append(berths[i], parse(out))
			if err := saveConsole(name, i, r, out); err != nil {
				return nil, nil, nil, err
			}
		}
		if r%2 == 1 {
			if err := bootFloor(); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	return hello, floors, berths, nil
}

// reportFloor prints the floors' figures beside one berth's, as ratios,
// and records them: floors[0] is the floor, floors[1] (if any) the floor
// starting its container with berth's container package.
func reportFloor(name, who string, boots []console, floors [][]console, rec *results.Set) {
	out := withOutput(boots)
	for i, floor := range floors {
		if len(withOutput(floor)) < len(floor) {
			fmt.Printf("  %s: a boot ended before the container's first output\n", floorBuilds[i].name)
			return
		}
	}
	if len(out) == 0 {
		return
	}
	bf := median(toOutput, out) * 1000
	ff := median(toOutput, floors[0]) * 1000
	fmt.Printf("  floor (bench/boot/floor: only the steps to the first output) start -> first container output: %6.0f ms; %s / floor %.2fx\n", ff, who, bf/ff)
	fi := 0.0
	if len(floors) > 1 {
		fi = median(toOutput, floors[1]) * 1000
		fmt.Printf("  floor with berth's isolation (the same, starting the container with berth's container package) start -> first container output: %6.0f ms; %s / it %.2fx, it / floor %.2fx\n",
			fi, who, bf/fi, fi/ff)
	}
	if who != "berth" {
		return // the floors' own figures go with the checkout's berth, once
	}
	rec.Add(name+" / floor start -> first container output", ff, "ms")
	rec.Add(name+" / berth / floor, first container output", bf/ff, "x")
	printBreakdown("the floor's boot", breakdown(floors[0]), rec, name+" / floor / ")
	if len(floors) > 1 {
		rec.Add(name+" / floor with berth's isolation start -> first container output", fi, "ms")
		rec.Add(name+" / berth / floor with berth's isolation, first container output", bf/fi, "x")
		printBreakdown("the floor with berth's isolation", breakdown(floors[1]), rec, name+" / floor with berth's isolation / ")
	}
}

// withOutput is the boots that got as far as a container's output.
func withOutput(boots []console) []console {
	var out []console
	for _, c := range boots {
		if c.firstOutput > 0 {
			out = append(out, c)
		}
	}
	return out
}

// toOutput is one boot's init start -> first container output, in s.
func toOutput(c console) float64 { return c.firstOutput - c.initStart }

// floorBuilds are the floors: the package, the file it is built into
// and the name the figures give it, in the order floorInitramfs returns
// their initramfs.
var floorBuilds = []struct{ pkg, file, name string }{
	{"./bench/boot/floor", "floor", "floor"},
	{"./bench/boot/floor/isolated", "floor-isolated", "floor with berth's isolation"},
}

// floorInitramfs is the demo initramfs with the floor as /init, and the
// same with the floor keeping berth's isolation (bench/boot/floor and
// bench/boot/floor/isolated, built into dir as floorBuilds names them).
func floorInitramfs(repo string, m machine, img, dir string) ([]string, error) {
	var initrds []string
	for _, f := range floorBuilds {
		bin := filepath.Join(dir, f.file)
		if err := vm.BuildGo(repo, f.pkg, m.arch, bin); err != nil {
			return nil, err
		}
		path := filepath.Join(dir, f.file+".cpio.zst")
		if err := demoInitramfs(repo, m, bin, img, path); err != nil {
			return nil, err
		}
		initrds = append(initrds, path)
	}
	return initrds, nil
}

// helloInitramfs is the baseline: hello as /init.
func helloInitramfs(repo, arch, dir string) (string, error) {
	hello := filepath.Join(dir, "hello")
	if err := vm.BuildGo(repo, "./bench/boot/hello", arch, hello); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "hello.cpio.zst")
	i := appliance.NewInitramfs()
	if err := i.AddFile("init", hello, 0o755); err != nil {
		return "", err
	}
	return path, i.Write(path)
}

// demoImage packs the demo image: busybox and demo/show.sh.
func demoImage(repo, arch, dir string) (string, error) {
	show, err := os.ReadFile(filepath.Join(repo, "demo", "show.sh"))
	if err != nil {
		return "", err
	}
	rootfs := filepath.Join(dir, "demo-rootfs")
	if err := busybox.Rootfs(repo, arch, rootfs, map[string]string{"demo/show.sh": string(show)}); err != nil {
		return "", err
	}
	img := filepath.Join(dir, "demo.tar.zst")
	return img, image.Pack(rootfs, img, image.PackOptions{})
}

// demoBerth builds the checkout's berth for m, the demo image and the
// initramfs of the two, in dir.
func demoBerth(repo string, m machine, dir string) (berth, img, initrd string, err error) {
	if berth, err = vm.BuildBerth(repo, m.arch, dir); err != nil {
		return "", "", "", err
	}
	if img, err = demoImage(repo, m.arch, dir); err != nil {
		return "", "", "", err
	}
	initrd = filepath.Join(dir, "demo.cpio.zst")
	return berth, img, initrd, demoInitramfs(repo, m, berth, img, initrd)
}

// demoInitramfs is what make demo boots, built as berth vm builds it and
// written to path: berth, demo/berth.toml, the demo image and the modules
// berth loads.
func demoInitramfs(repo string, m machine, berth, img, path string) error {
	spec := appliance.Spec{Config: filepath.Join(repo, "demo", "berth.toml"), Arch: m.arch, Berth: berth,
		Files: map[string]string{"/images/demo.tar.zst": img}}
	return vm.Initramfs(spec, m.kernel, path)
}

// boot boots initrd and returns the console once QEMU exits or, when until
// is set, once the console shows it: a raspi3b cannot power itself off
// without bcm2835_wdt, whose arming resets QEMU 7.2's model at once, so
// its boots are ended from here.
//
// A boot whose guest kernel locked up (vm.LockupError: a CPU stuck in the
// kernel for a minute, seen once in raspi3b boots under QEMU 7.2's TCG)
// is reported with the console's last lines and booted again, once; a
// second lockup ends the benchmark.
func (m machine) boot(initrd, until string) (string, error) {
	out, _, err := m.cfg(initrd).Boot(nil, until)
	var l *vm.LockupError
	if !errors.As(err, &l) {
		return out, err
	}
	fmt.Printf("  %s: %v; its console ended:\n%s\n  booting it again, once\n", m.name, err, lastLines(out, 12))
	out, _, err = m.cfg(initrd).Boot(nil, until)
	return out, err
}
