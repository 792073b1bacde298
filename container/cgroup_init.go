package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// InitCgroup is the v2 cgroup, beside the containers' parent, that PID 1
// moves itself into (see PlaceInit). Its name cannot be a container's.
const InitCgroup = "berth.init"

// InitCPUWeight is InitCgroup's cpu.weight: a tenth of the containers'
// parent's default weight (100). When the workloads want every CPU, PID 1
// gets a share in eleven, and always when they leave any; in the boot
// this puts a started container's first work ahead of the next start.
const InitCPUWeight = 10

// PlaceInit moves process pid, PID 1, out of the root cgroup into
// InitCgroup. It must come before anything enables controllers below the
// root (PrepareParent, a container's start): below a cgroup namespace's
// root, which is not the kernel's root cgroup, they can only be enabled
// once no process is left in it. PrepareParent then sets InitCgroup's CPU
// weight. On v1 it does nothing.
func (l *Layout) PlaceInit(pid int) error {
	if l.Version != 2 {
		return nil
	}
	dir := filepath.Join(l.Unified, InitCgroup)
	if err := unix.Mkdir(dir, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	if err := writeFile(filepath.Join(dir, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("move PID 1 to its cgroup: %w", err)
	}
	return nil
}

// weighInit sets InitCgroup's cpu.weight to InitCPUWeight, when PID 1 is
// there (PlaceInit) and the cpu controller is enabled for it.
func (l *Layout) weighInit() error {
	weight := filepath.Join(l.Unified, InitCgroup, "cpu.weight")
	if _, err := os.Stat(weight); errors.Is(err, os.ErrNotExist) {
		return nil // PID 1 not placed, or a kernel without the cpu controller
	}
	if err := writeFile(weight, strconv.Itoa(InitCPUWeight)); err != nil {
		return fmt.Errorf("PID 1's CPU weight: %w", err)
	}
	return nil
}
