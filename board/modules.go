package board

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"sync"
)

// LoadModules loads the profile's modules and extra ones from
// /lib/modules/$(uname -r), as modprobe would: each name may be a module
// or an alias (modules.alias), each module comes after its dependencies
// (modules.dep) and with its soft dependencies (modules.softdep: crc32c
// before libcrc32c). A module that is built in or already loaded is a
// success and not listed; one that is missing is reported, and the others
// are still loaded.
func (p Profile) LoadModules(extra []string) (loaded []string, errs []error) {
	names := append(append([]string(nil), p.Modules...), extra...)
	if len(names) == 0 {
		return nil, nil
	}
	ix, err := openModIndex("/")
	if err != nil {
		return nil, []error{fmt.Errorf("load modules %v: %w", names, err)}
	}
	return ix.probeAll(names)
}

// probeAll probes each name in turn.
func (ix *modIndex) probeAll(names []string) (loaded []string, errs []error) {
	for _, n := range names {
		got, err := ix.probe(n)
		loaded = append(loaded, got...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return loaded, errs
}

// HasMemoryCgroup reports whether the kernel's memory cgroup controller
// is enabled. Raspberry Pi kernels leave it off unless the command line
// has cgroup_enable=memory.
func HasMemoryCgroup() bool {
	for _, c := range CgroupControllers() {
		if c == "memory" {
			return true
		}
	}
	return false
}

// cgroupControllersInit computes CgroupControllers's value, once.
func cgroupControllersInit() []string {
	f, err := os.Open("/proc/cgroups")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// #subsys_name hierarchy num_cgroups enabled
		fields := strings.Fields(sc.Text())
		if len(fields) == 4 && !strings.HasPrefix(fields[0], "#") && fields[3] == "1" {
			out = append(out, fields[0])
		}
	}
	return out
}

// cgroupControllersOnce holds its result: a sync.OnceValue variable would be init
// code run in every berth process; a sync.Once is data.
var cgroupControllersOnce struct {
	sync.Once
	v []string
}

// CgroupControllers lists the cgroup controllers the kernel has enabled,
// from /proc/cgroups, read once: the set is fixed at boot.
func CgroupControllers() []string {
	cgroupControllersOnce.Do(func() { cgroupControllersOnce.v = cgroupControllersInit() })
	return cgroupControllersOnce.v
}
