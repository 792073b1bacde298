package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// arm is the 32-bit run: the arm berth under qemu-arm, which reads any
// image larger than 32 MiB through windows, against Debian's armhf GNU tar
// and zstd under qemu-arm, on the same machine in the same run.
type arm struct {
	qemu    string // qemu-arm-static
	berth   string // the arm berth (GOARM=7)
	sysroot string // armhf tar, zstd and their libraries (make bench-armhf)
	wrap    string // a directory whose zstd runs the armhf zstd under qemu-arm
}

// prepare finds what the arm run needs and writes the zstd wrapper into
// dir. GNU tar runs its compressor as `/bin/sh -c 'zstd -d'`; qemu-arm
// runs the host's /bin/sh (the sysroot has none), which finds the wrapper
// first on PATH, so tar and zstd both run as armhf code under qemu-arm.
func (a *arm) prepare(dir string) error {
	var err error
	if a.qemu, err = exec.LookPath("qemu-arm-static"); err != nil {
		return fmt.Errorf("qemu-arm-static is missing (make bench-deps installs it)")
	}
	for _, p := range []string{a.berth, filepath.Join(a.sysroot, "usr/bin/tar"), filepath.Join(a.sysroot, "usr/bin/zstd")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (make all bench-armhf makes it)", err)
		}
	}
	a.wrap = filepath.Join(dir, "armhf-bin")
	if err := os.MkdirAll(a.wrap, 0o755); err != nil {
		return err
	}
	script := fmt.Sprintf("#!/bin/sh\nexec %s -L %s %s/usr/bin/zstd \"$@\"\n", a.qemu, a.sysroot, a.sysroot)
	return os.WriteFile(filepath.Join(a.wrap, "zstd"), []byte(script), 0o755)
}

// benchArm times the arm berth against armhf tar --zstd, both under
// qemu-arm, alternating, after checking that their trees agree.
func benchArm(in *inputs, a *arm, tmpfs string, n int) error {
	tools := []tool{
		{name: "berth image unpack", argv: func(d string) []string {
			return []string{a.qemu, a.berth, "image", "unpack", in.berth, d}
		}},
		{name: "tar --zstd -xf", mkdest: true, argv: func(d string) []string {
			return []string{"env", "PATH=" + a.wrap + ":" + os.Getenv("PATH"),
				a.qemu, "-L", a.sysroot, filepath.Join(a.sysroot, "usr/bin/tar"), "--zstd", "-xf", in.zst, "-C", d}
		}},
	}
	if err := checkArmSame(in, tools, tmpfs); err != nil {
		return err
	}
	guest, err := guestPeak(tools[0], a.berth, tmpfs)
	if err != nil {
		return err
	}
	res, err := runAll(tools, tmpfs, n)
	if err != nil {
		return err
	}
	fmt.Printf("\n== %s on 32-bit arm under qemu-arm: the berth image (%.1f MB) read through windows of 32 MiB; Debian's armhf tar and zstd\n",
		in.name, float64(in.berthSize)/1e6)
	fmt.Printf("%-26s %9s %9s %9s %10s %14s\n", "tool (arm, qemu-arm)", "median", "min", "max", "vs berth", "qemu peak RSS")
	base := res[0].median()
	for i, t := range tools {
		r := res[i]
		lo, hi := r.times[0], r.times[0]
		for _, d := range r.times {
			lo, hi = min(lo, d), max(hi, d)
		}
		fmt.Printf("%-26s %8.3fs %8.3fs %8.3fs %9.2fx %10d MiB\n", t.name, r.median().Seconds(), lo.Seconds(), hi.Seconds(),
			r.median().Seconds()/base.Seconds(), r.maxRSS()/1024)
	}
	fmt.Printf("  arm berth / arm tar --zstd -xf: %.3f\n", base.Seconds()/res[1].median().Seconds())
	fmt.Printf("  arm berth's own peak RSS (its mappings in qemu, sampled): %d MiB (target ≤ 64 MiB); qemu's RSS adds its translator\n", guest>>10)
	return nil
}

// checkArmSame unpacks once with each tool (warming the caches and the
// translators) and compares the trees.
func checkArmSame(in *inputs, tools []tool, tmpfs string) error {
	dirs := []string{filepath.Join(tmpfs, "check-arm-berth"), filepath.Join(tmpfs, "check-arm-tar")}
	for i, t := range tools {
		defer os.RemoveAll(dirs[i])
		if t.mkdest {
			os.Mkdir(dirs[i], 0o755)
		}
		argv := t.argv(dirs[i])
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	if err := compareTrees(dirs[0], dirs[1]); err != nil {
		return fmt.Errorf("the arm berth's tree differs from the arm tar's: %w", err)
	}
	return nil
}

// guestPeak runs t once and samples the resident size of the guest's
// mappings (qemu-arm puts a 32-bit guest's 4 GiB at host address 0, which
// the mapping of the arm binary shows): berth's own peak RSS, without
// qemu's translator. In KiB.
func guestPeak(t tool, binary, tmpfs string) (int64, error) {
	dest := filepath.Join(tmpfs, "dest")
	defer os.RemoveAll(dest)
	argv := t.argv(dest)
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	peak := int64(-1)
	for tick := time.Tick(20 * time.Millisecond); ; {
		select {
		case err := <-done:
			if err != nil {
				return 0, fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
			}
			if peak < 0 {
				return 0, fmt.Errorf("qemu-arm did not map %s below 4 GiB: cannot tell berth's memory from qemu's", binary)
			}
			return peak, nil
		case <-tick:
			peak = max(peak, guestRSS(cmd.Process.Pid, binary))
		}
	}
}

// guestRSS sums the Rss of process pid's mappings below 4 GiB; -1 until
// binary is mapped there.
func guestRSS(pid int, binary string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return -1
	}
	var sum int64
	inGuest, seen := false, false
	for _, line := range strings.Split(string(b), "\n") {
		var lo, hi uint64
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			inGuest = hi <= 1<<32
			seen = seen || inGuest && strings.HasSuffix(line, " "+binary)
			continue
		}
		if rest, ok := strings.CutPrefix(line, "Rss:"); ok && inGuest {
			var kib int64
			fmt.Sscan(rest, &kib)
			sum += kib
		}
	}
	if !seen {
		return -1
	}
	return sum
}
