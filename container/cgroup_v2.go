package container

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// v2Controllers are the controllers berth enables for containers on a
// unified hierarchy, when the kernel offers them.
var v2Controllers = []string{"cpu", "cpuset", "io", "memory", "pids"}

// enableV2Controllers delegates the controllers berth uses from the root of
// the unified hierarchy down to parent, creating parent on the way.
func enableV2Controllers(root, parent string) error {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", parent, err)
	}
	data, err := readCtlFile(filepath.Join(root, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("read %s/cgroup.controllers: %w", root, err)
	}
	offered := strings.Fields(string(data))
	var enable []string
	for _, c := range v2Controllers {
		if slices.Contains(offered, c) {
			enable = append(enable, "+"+c)
		}
	}
	for _, dir := range []string{root, parent} {
		f := filepath.Join(dir, "cgroup.subtree_control")
		current, _ := readCtlFile(f)
		on := strings.Fields(string(current))
		var missing []string
		for _, e := range enable {
			if !slices.Contains(on, e[1:]) {
				missing = append(missing, e)
			}
		}
		if len(missing) == 0 {
			continue
		}
		if err := writeFile(f, strings.Join(missing, " ")); err != nil {
			return fmt.Errorf("enable cgroup controllers: %w", err)
		}
	}
	return nil
}

// setV2Limits writes lim into the cgroup at dir. A memory limit comes with
// memory.swap.max = MemorySwap (default 0), so that it limits memory and
// not merely memory that has not been swapped out yet.
func setV2Limits(dir string, lim Limits) error {
	var w []string // file, value pairs, in order
	if lim.Memory > 0 {
		w = append(w, "memory.max", strconv.FormatInt(lim.Memory, 10))
		if _, err := os.Stat(filepath.Join(dir, "memory.swap.max")); err == nil {
			w = append(w, "memory.swap.max", swapValue(lim.MemorySwap))
		}
	}
	if lim.MemoryHigh > 0 {
		w = append(w, "memory.high", strconv.FormatInt(lim.MemoryHigh, 10))
	}
	if lim.CPUs != nil {
		const period = 100000
		w = append(w, "cpu.max", fmt.Sprintf("%d %d", int64(*lim.CPUs*period), period))
	}
	if lim.CPUWeight != nil {
		w = append(w, "cpu.weight", strconv.FormatUint(*lim.CPUWeight, 10))
	}
	if lim.CPUSet != "" {
		w = append(w, "cpuset.cpus", lim.CPUSet)
	}
	if lim.Pids > 0 {
		w = append(w, "pids.max", strconv.FormatInt(lim.Pids, 10))
	}
	if lim.IOWeight != nil {
		w = append(w, "io.weight", "default "+strconv.FormatUint(*lim.IOWeight, 10))
	}
	for _, line := range lim.IOMax {
		w = append(w, "io.max", line)
	}
	for i := 0; i < len(w); i += 2 {
		err := writeFile(filepath.Join(dir, w[i]), w[i+1])
		if w[i] == "io.weight" {
			err = ioWeightMissing(err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func swapValue(swap int64) string {
	if swap < 0 {
		return "max"
	}
	return strconv.FormatInt(swap, 10)
}

// v2Stats reads a v2 cgroup's figures from its directory.
func (r *statReader) v2Stats(dir string) Stats {
	file := func(name string) string { return filepath.Join(dir, name) }
	s := Stats{
		CPUUsec:     r.figure(file("cpu.stat"), keyed("usage_usec")),
		Memory:      r.figure(file("memory.current"), parseValue),
		MemoryPeak:  r.figure(file("memory.peak"), parseValue),
		MemoryLimit: r.figure(file("memory.max"), parseLimit),
		OOMKills:    r.figure(file("memory.events"), keyed("oom_kill")),
		Pids:        r.figure(file("pids.current"), parseValue),
		PidsLimit:   r.figure(file("pids.max"), parseLimit),
	}
	r.io(&s, file("io.stat"), parseIOStat)
	return s
}
