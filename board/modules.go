package board

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/u-root/u-root/pkg/kmodule"
)

// LoadModules loads the profile's modules and extra ones, with their
// dependencies, from /lib/modules/$(uname -r) (u-root's pkg/kmodule reads
// modules.dep and modules.builtin there and orders each module after its
// dependencies; loadModuleFile loads the files). A module that is built in
// or already loaded is a success; one that is missing is reported, and the
// others are still loaded.
func (p Profile) LoadModules(extra []string) (loaded []string, errs []error) {
	names := append(append([]string(nil), p.Modules...), extra...)
	if len(names) == 0 {
		return nil, nil
	}
	var mu sync.Mutex
	var order []string // the files one Probe would load, dependencies first
	prober, err := kmodule.NewProber(kmodule.ProbeOpts{DryRunCB: func(path string) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, path)
	}})
	if err != nil {
		return nil, []error{fmt.Errorf("load modules %v: %w", names, err)}
	}
	for _, n := range names {
		order = order[:0]
		if err := prober.Probe(n, ""); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			errs = append(errs, fmt.Errorf("load module %s: %w", n, err))
			continue
		}
		if err := loadFiles(order); err != nil {
			errs = append(errs, fmt.Errorf("load module %s: %w", n, err))
			continue
		}
		loaded = append(loaded, n)
	}
	return loaded, errs
}

// loadFiles loads module files in order, stopping at the first failure.
func loadFiles(paths []string) error {
	for _, p := range paths {
		if err := loadModuleFile(p); err != nil {
			return err
		}
	}
	return nil
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

// CgroupControllers lists the cgroup controllers the kernel has enabled,
// from /proc/cgroups, read once: the set is fixed at boot.
var CgroupControllers = sync.OnceValue(func() []string {
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
})
