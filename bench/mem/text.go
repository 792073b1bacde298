package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"berth/internal/pagemap"

	"golang.org/x/sys/unix"
)

// The text part (-only text) asks why PID 1 maps most of its binary: how
// much of berth's code an idle berth boot has run, against how much of
// the code it has mapped.
//
//  1. berth boot (o.berth) runs on this host with the two containers of
//     the host part until both are up and o.settle has passed; the pages
//     of its binary it then has mapped are read from /proc/PID/pagemap.
//  2. A build of the same source with coverage counters in every package
//     that can have them (go build -cover -coverpkg=all) runs the same
//     boot; its counters, written when it powers off, name the functions
//     that ran (go tool covdata func: a function ran if any of its
//     statements did). A closure counts as its enclosing function does.
//     The counters include what the power-off ran: what ran is a bound,
//     from above, of what the idle boot had run.
//  3. Each function of o.berth (its pclntab: address, size, file and
//     line) is matched to the coverage list by file and line, and the
//     two are printed by package: the code, the part of it that ran and
//     the part of it mapped. Functions without counters (packages that
//     cannot be instrumented, generated code) are shown apart and
//     counted as run.
//
// The kernel maps a file's pages 64 KiB around each read fault
// (fault-around), so a function that runs maps the window it lies in.

// window is the kernel's fault-around: 64 KiB unless changed in debugfs.
const window = 64 << 10

// textFunc is one function of the binary.
type textFunc struct {
	name, pkg  string
	file       string
	line       int
	start, end uint64 // addresses
	ran        bool
	measured   bool
}

func benchText(o options, dir string) error {
	base, err := hostSetup(o, dir)
	if err != nil {
		return err
	}
	// 1. What the boot maps.
	m := base
	m.dir = filepath.Join(dir, "text-map")
	mapped, err := idleMapped(&m)
	if err != nil {
		return fmt.Errorf("pages mapped: %w", err)
	}
	// 2. What runs.
	cover := filepath.Join(dir, "berth-cover")
	build := exec.Command("go", "build", "-trimpath", "-cover", "-coverpkg=all", "-o", cover, ".")
	build.Dir, build.Env = o.repo, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -cover: %w\n%s", err, out)
	}
	covDir := filepath.Join(dir, "covdata")
	if err := os.MkdirAll(covDir, 0o755); err != nil {
		return err
	}
	c := base
	c.berth, c.dir = cover, filepath.Join(dir, "text-cover")
	if err := coveredBoot(&c, covDir); err != nil {
		return fmt.Errorf("coverage run: %w", err)
	}
	ran, measured, err := coveredFuncs(covDir)
	if err != nil {
		return err
	}
	// 3. The two matched on o.berth's functions.
	funcs, err := readFuncs(base.berth)
	if err != nil {
		return err
	}
	for i := range funcs {
		f := &funcs[i]
		k := funcKey(f.file, f.line)
		f.ran, f.measured = ran[k], measured[pkgOfFile(f.file)]
	}
	inheritClosures(funcs)
	reportText(funcs, mapped)
	plain, random, err := faultAround(base.berth)
	if err != nil {
		return err
	}
	fmt.Printf("  a fresh mapping of the binary, %d reads %d KiB apart, maps %d KiB; with MADV_RANDOM %d KiB\n",
		probeReads, probeStride>>10, plain, random)
	return nil
}

// The fault-around probe: reads this far apart, each in a window of its
// own.
const (
	probeReads  = 16
	probeStride = 256 << 10
)

// probeSink keeps the probe's reads from being optimised away.
var probeSink byte

// faultAround maps file afresh, reads a byte every probeStride, and
// returns how many KiB of it are then mapped, without and with
// MADV_RANDOM: whether that advice stops the kernel mapping a window
// around each fault.
func faultAround(file string) (plain, random int, err error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	for _, advise := range []bool{false, true} {
		b, err := unix.Mmap(int(f.Fd()), 0, probeReads*probeStride, unix.PROT_READ, unix.MAP_PRIVATE)
		if err != nil {
			return 0, 0, fmt.Errorf("map %s: %w", file, err)
		}
		if advise {
			err = unix.Madvise(b, unix.MADV_RANDOM)
		}
		for i := 0; i < len(b); i += probeStride {
			probeSink += b[i]
		}
		var pages map[uint64]bool
		if err == nil {
			pages, err = presentPages(os.Getpid(), file)
		}
		// Only the probe's own mapping: this process may map the file
		// otherwise too (a test probes its own binary).
		start := uint64(uintptr(unsafe.Pointer(&b[0])))
		kib := 0
		for p := range pages {
			if p >= start && p < start+uint64(len(b)) {
				kib += 4
			}
		}
		_ = unix.Munmap(b)
		if err != nil {
			return 0, 0, fmt.Errorf("probe %s: %w", file, err)
		}
		if advise {
			random = kib
		} else {
			plain = kib
		}
	}
	return plain, random, nil
}

// idleMapped runs h's berth boot until both containers are up and
// o.settle has passed, and returns the virtual addresses of the pages of
// its binary it has mapped.
func idleMapped(h *hostRun) (map[uint64]bool, error) {
	if err := h.begin(nil); err != nil {
		return nil, err
	}
	defer h.stop()
	if err := h.waitRunning(0, timeLimit); err != nil {
		return nil, err
	}
	if _, err := h.steady(); err != nil {
		return nil, err
	}
	return presentPages(h.pid, h.berth)
}

// coveredBoot runs the coverage build's berth boot (h.berth) the same way
// and powers it off, which writes its counters to covDir.
func coveredBoot(h *hostRun, covDir string) error {
	if err := h.begin([]string{"GOCOVERDIR=" + covDir}); err != nil {
		return err
	}
	defer h.stop()
	if err := h.waitRunning(0, timeLimit); err != nil {
		return err
	}
	_, err := h.steady()
	return err
}

// presentPages reads which pages of pid's mappings of file are present.
func presentPages(pid int, file string) (map[uint64]bool, error) {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	present := map[uint64]bool{}
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[5] != file {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, _ := strconv.ParseUint(lo, 16, 64)
		end, _ := strconv.ParseUint(hi, 16, 64)
		pages, err := pagemap.Present(pid, start, end)
		if err != nil {
			return nil, err
		}
		for _, p := range pages {
			present[p] = true
		}
	}
	return present, sc.Err()
}
