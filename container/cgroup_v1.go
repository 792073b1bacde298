package container

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// setV1Limits writes lim and the device rules into the per-controller
// directories of a v1 cgroup. v2-style values are converted: CPUWeight to
// cpu.shares, IOWeight to blkio.weight, io.max lines to blkio throttles,
// MemoryHigh to the soft limit.
func setV1Limits(dirs map[string]string, lim Limits, devices []deviceRule) error {
	set := func(ctl, file, value string) error {
		return writeFile(filepath.Join(dirs[ctl], file), value)
	}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if lim.Memory > 0 {
		add(set("memory", "memory.limit_in_bytes", strconv.FormatInt(lim.Memory, 10)))
		if _, err := os.Stat(filepath.Join(dirs["memory"], "memory.memsw.limit_in_bytes")); err == nil && lim.MemorySwap >= 0 {
			add(set("memory", "memory.memsw.limit_in_bytes", strconv.FormatInt(lim.Memory+lim.MemorySwap, 10)))
		}
	}
	if lim.MemoryHigh > 0 {
		add(set("memory", "memory.soft_limit_in_bytes", strconv.FormatInt(lim.MemoryHigh, 10)))
	}
	if lim.CPUs != nil {
		const period = 100000
		add(set("cpu", "cpu.cfs_period_us", strconv.Itoa(period)))
		add(set("cpu", "cpu.cfs_quota_us", strconv.FormatInt(int64(*lim.CPUs*period), 10)))
	}
	if lim.CPUWeight != nil {
		// The inverse of the OCI shares-to-weight conversion.
		shares := 2 + (*lim.CPUWeight-1)*262142/9999
		add(set("cpu", "cpu.shares", strconv.FormatUint(shares, 10)))
	}
	if dir, ok := dirs["cpuset"]; ok {
		add(initCpuset(dir, lim.CPUSet))
	}
	if lim.Pids > 0 {
		add(set("pids", "pids.max", strconv.FormatInt(lim.Pids, 10)))
	}
	if lim.IOWeight != nil {
		add(set("blkio", "blkio.weight", strconv.FormatUint(10+(*lim.IOWeight-1)*990/9999, 10)))
	}
	for _, line := range lim.IOMax {
		add(setV1IOMax(dirs["blkio"], line))
	}
	if dir, ok := dirs["devices"]; ok {
		add(writeFile(filepath.Join(dir, "devices.deny"), "a"))
		for _, r := range devices {
			add(writeFile(filepath.Join(dir, "devices.allow"), r.v1()))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// initCpuset fills a new v1 cpuset cgroup, whose cpus and mems start out
// empty (so no task could join it), from its parent, then applies cpus.
func initCpuset(dir, cpus string) error {
	for _, d := range []string{filepath.Dir(dir), dir} {
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				return fmt.Errorf("init cpuset %s: %w", d, err)
			}
			if strings.TrimSpace(string(cur)) != "" {
				continue
			}
			parent, err := os.ReadFile(filepath.Join(filepath.Dir(d), f))
			if err != nil {
				return fmt.Errorf("init cpuset %s: %w", d, err)
			}
			if err := writeFile(filepath.Join(d, f), strings.TrimSpace(string(parent))); err != nil {
				return err
			}
		}
	}
	if cpus != "" {
		return writeFile(filepath.Join(dir, "cpuset.cpus"), cpus)
	}
	return nil
}

// setV1IOMax turns one io.max line into blkio throttle files.
func setV1IOMax(dir, line string) error {
	fields := strings.Fields(line)
	if len(fields) < 2 {
		return fmt.Errorf("io_max %q: want \"MAJ:MIN key=value...\"", line)
	}
	files := map[string]string{
		"rbps": "blkio.throttle.read_bps_device", "wbps": "blkio.throttle.write_bps_device",
		"riops": "blkio.throttle.read_iops_device", "wiops": "blkio.throttle.write_iops_device",
	}
	for _, kv := range fields[1:] {
		k, v, _ := strings.Cut(kv, "=")
		f, ok := files[k]
		if !ok {
			return fmt.Errorf("io_max %q: unknown key %q", line, k)
		}
		if v == "max" {
			v = "0"
		}
		if err := writeFile(filepath.Join(dir, f), fields[0]+" "+v); err != nil {
			return err
		}
	}
	return nil
}
