package container

import (
	"errors"
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
		add(ioWeightMissing(set("blkio", "blkio.weight", strconv.FormatUint(10+(*lim.IOWeight-1)*990/9999, 10))))
	}
	for _, line := range lim.IOMax {
		add(setV1IOMax(dirs["blkio"], line))
	}
	if dir, ok := dirs["devices"]; ok {
		add(writeFile(filepath.Join(dir, "devices.deny"), "a"))
		rules := make([]string, len(devices))
		for i, r := range devices {
			rules[i] = r.v1()
		}
		if len(rules) > 0 {
			add(writeEach(filepath.Join(dir, "devices.allow"), rules...))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// initCpuset fills a new v1 cpuset cgroup from its parent, then applies
// cpus. A new cpuset's cpus and mems start out empty (no task could join
// it) unless its parent has cgroup.clone_children set: berth sets it on
// its own parent the first time it fills one, so later cgroups start
// filled and cost two reads.
func initCpuset(dir, cpus string) error {
	if !cpusetFilled(dir) {
		for _, d := range []string{filepath.Dir(dir), dir} {
			if err := fillCpuset(d); err != nil {
				return err
			}
		}
		// A hint for the next start: if the kernel refuses it, that start
		// fills its cpuset as this one did.
		_ = writeFile(filepath.Join(filepath.Dir(dir), "cgroup.clone_children"), "1")
	}
	if cpus != "" {
		return writeFile(filepath.Join(dir, "cpuset.cpus"), cpus)
	}
	return nil
}

// cpusetFilled reports whether the cpuset d has cpus and mems.
func cpusetFilled(d string) bool {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		if cur, err := readCtlFile(filepath.Join(d, f)); err != nil || strings.TrimSpace(string(cur)) == "" {
			return false
		}
	}
	return true
}

// fillCpuset copies the cpus and mems of d's parent into d where d has
// none.
func fillCpuset(d string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := readCtlFile(filepath.Join(d, f))
		if err != nil {
			return fmt.Errorf("init cpuset %s: %w", d, err)
		}
		if strings.TrimSpace(string(cur)) != "" {
			continue
		}
		parent, err := readCtlFile(filepath.Join(filepath.Dir(d), f))
		if err != nil {
			return fmt.Errorf("init cpuset %s: %w", d, err)
		}
		if err := writeFile(filepath.Join(d, f), strings.TrimSpace(string(parent))); err != nil {
			return err
		}
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

// v1Unlimited is where v1 limits start to mean "none": the kernel shows
// no limit as the largest page count times the page size, just under
// 2^63.
const v1Unlimited = 1 << 62

// v1Stats reads a v1 cgroup's figures from its per-controller
// directories; those of a controller that is not mounted stay nil.
func (r *statReader) v1Stats(dirs map[string]string) Stats {
	figure := func(ctl, name string, parse func([]byte) (int64, bool, error)) *int64 {
		if dir, ok := dirs[ctl]; ok {
			return r.figure(filepath.Join(dir, name), parse)
		}
		return nil
	}
	s := Stats{
		CPUUsec:     figure("cpuacct", "cpuacct.usage", parseValue),
		Memory:      figure("memory", "memory.usage_in_bytes", parseValue),
		MemoryPeak:  figure("memory", "memory.max_usage_in_bytes", parseValue),
		MemoryLimit: figure("memory", "memory.limit_in_bytes", parseV1Limit),
		OOMKills:    figure("memory", "memory.oom_control", keyed("oom_kill")),
		Pids:        figure("pids", "pids.current", parseValue),
		PidsLimit:   figure("pids", "pids.max", parseLimit),
	}
	if s.CPUUsec != nil {
		*s.CPUUsec /= 1000 // cpuacct.usage is in nanoseconds
	}
	if dir, ok := dirs["blkio"]; ok {
		file := filepath.Join(dir, "blkio.throttle.io_service_bytes_recursive")
		if _, err := os.Stat(file); err != nil {
			file = filepath.Join(dir, "blkio.throttle.io_service_bytes")
		}
		r.io(&s, file, parseBlkio)
	}
	return s
}

// parseV1Limit parses memory.limit_in_bytes, where no limit is a number
// near 2^63.
func parseV1Limit(data []byte) (int64, bool, error) {
	n, ok, err := parseValue(data)
	return n, ok && n < v1Unlimited, err
}

// EnableIOStats makes a v1 layout count block I/O per cgroup on every
// disk. Recent kernels (Linux 6.18 here; Bottlerocket patched its 6.1
// for it) count v1's blkio.throttle.io_service_bytes only on a disk where
// blk-throttle has been set up, which the first throttle rule written for
// that disk does, for good: berth writes a rule that limits nothing
// ("MAJ:MIN 0") for each disk into its own parent cgroup. Disks of size 0
// (unbound loop devices) are skipped. On v2, io.stat always counts: it
// does nothing.
func (l *Layout) EnableIOStats() error {
	point, ok := l.Controllers["blkio"]
	if l.Version != 1 || !ok {
		return nil
	}
	parent := filepath.Join(point, CgroupParent)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("count block I/O: %w", err)
	}
	disks, err := os.ReadDir("/sys/block")
	if err != nil {
		return fmt.Errorf("count block I/O: %w", err)
	}
	var errs []error
	for _, d := range disks {
		size, _ := os.ReadFile(filepath.Join("/sys/block", d.Name(), "size"))
		dev, err := os.ReadFile(filepath.Join("/sys/block", d.Name(), "dev"))
		if err != nil || strings.TrimSpace(string(size)) == "0" {
			continue
		}
		rule := strings.TrimSpace(string(dev)) + " 0"
		if err := writeFile(filepath.Join(parent, "blkio.throttle.read_bps_device"), rule); err != nil {
			errs = append(errs, fmt.Errorf("count block I/O on %s: %w", d.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// ioWeightMissing explains err when the kernel has no file for an I/O
// weight: blkio.weight came with CFQ, gone since Linux 5.0; io.weight
// comes with io.cost, which many boards' kernels lack (BFQ's own
// weights, blkio.bfq.weight and io.bfq.weight, are not written). Other
// errors are as they were.
func ioWeightMissing(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("io_weight: this kernel has no cgroup I/O weight (cgroup v1's blkio.weight came with CFQ, gone since Linux 5.0; v2's io.weight needs io.cost): leave io_weight out (%w)", err)
	}
	return err
}
