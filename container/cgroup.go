package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/mountinfo"
)

// CgroupParent is the cgroup, under each hierarchy's root, that holds one
// child cgroup per container.
const CgroupParent = "berth"

// Layout is the cgroup layout of this machine: a unified (v2) hierarchy, or
// v1 hierarchies with one mount per controller (or per group of co-mounted
// controllers). Hybrid hosts, which mount a controller-less cgroup2 beside
// the v1 controllers, count as v1.
type Layout struct {
	// Version is 1 or 2.
	Version int
	// Unified is the cgroup2 mount point on v2 hosts.
	Unified string
	// Controllers maps each v1 controller (memory, pids, ...) to the
	// mount point of its hierarchy.
	Controllers map[string]string
	// Hierarchies maps each v1 mount point berth uses to the controllers
	// co-mounted there ("cpu,cpuacct").
	Hierarchies map[string][]string
}

// v1Controllers are the v1 controllers berth uses.
var v1Controllers = []string{"memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices"}

// DetectCgroups reads /proc/self/mountinfo and reports the cgroup layout.
func DetectCgroups() (*Layout, error) {
	mounts, err := mountinfo.Read()
	if err != nil {
		return nil, fmt.Errorf("detect cgroups: %w", err)
	}
	l := &Layout{Controllers: map[string]string{}, Hierarchies: map[string][]string{}}
	for _, m := range mounts {
		switch m.FSType {
		case "cgroup2":
			if m.Point == "/sys/fs/cgroup" {
				l.Unified = m.Point
			}
		case "cgroup":
			var ctls []string
			for _, opt := range strings.Split(m.Super, ",") {
				if isV1Controller(opt) {
					ctls = append(ctls, opt)
				}
			}
			used := false
			for _, c := range ctls {
				if _, seen := l.Controllers[c]; !seen && slices.Contains(v1Controllers, c) {
					l.Controllers[c] = m.Point
					used = true
				}
			}
			if used {
				l.Hierarchies[m.Point] = ctls
			}
		}
	}
	switch {
	case l.Unified != "":
		l.Version = 2
		l.Controllers, l.Hierarchies = nil, nil
	case len(l.Controllers) > 0:
		l.Version = 1
	default:
		return nil, errors.New("detect cgroups: no cgroup hierarchy is mounted at /sys/fs/cgroup")
	}
	return l, nil
}

func isV1Controller(s string) bool {
	switch s {
	case "memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer", "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc":
		return true
	}
	return false
}

// String describes the layout for logs, e.g. "v2 at /sys/fs/cgroup".
func (l *Layout) String() string {
	if l.Version == 2 {
		return "v2 at " + l.Unified
	}
	var have []string
	for _, c := range v1Controllers {
		if _, ok := l.Controllers[c]; ok {
			have = append(have, c)
		}
	}
	return "v1 (" + strings.Join(have, ", ") + ")"
}

// cgroup is one container's cgroup: a directory in the unified hierarchy,
// or one directory per v1 hierarchy.
type cgroup struct {
	layout *Layout
	name   string
	// dirs are the directories that make up the cgroup; on v2 there is
	// exactly one.
	dirs []string
	// byController maps a v1 controller to its directory.
	byController map[string]string
	// lock is held while the cgroup lives (cgroup_lock.go); nil for none.
	lock *os.File
}

// lateDirs are the directories the init joins itself, last, just before
// the workload runs: the v2 cgroup, or the v1 hierarchies holding the
// memory or pids controller, whose limits the Go init must not count
// against. The other v1 hierarchies the parent joins it to at once, while
// it starts up.
func (cg *cgroup) lateDirs() (late, early []string) {
	if cg.layout.Version == 2 {
		return cg.dirs, nil
	}
	for _, dir := range cg.dirs {
		if dir == cg.byController["memory"] || dir == cg.byController["pids"] {
			late = append(late, dir)
		} else {
			early = append(early, dir)
		}
	}
	return late, early
}

// cgroupDirs returns the directories of container name's cgroup.
func (l *Layout) cgroupDirs(name string) (dirs []string, byController map[string]string) {
	if l.Version == 2 {
		return []string{filepath.Join(l.Unified, CgroupParent, name)}, nil
	}
	byController = map[string]string{}
	for point := range l.Hierarchies {
		dirs = append(dirs, filepath.Join(point, CgroupParent, name))
	}
	sort.Strings(dirs)
	for c, point := range l.Controllers {
		byController[c] = filepath.Join(point, CgroupParent, name)
	}
	return dirs, byController
}

// newCgroup creates the cgroup for container name and applies lim and the
// device rules. A leftover cgroup of the same name (from a berth that was
// killed) is emptied and removed first.
func (l *Layout) newCgroup(name string, lim Limits, devices []deviceRule) (*cgroup, error) {
	lock, err := lockCgroup(name)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w: give one of them another name, or stop the other", name, err)
	}
	cg := &cgroup{layout: l, name: name, lock: lock}
	cg.dirs, cg.byController = l.cgroupDirs(name)
	if err := l.makeDirs(cg, lim); err != nil {
		unlockCgroup(lock)
		return nil, err
	}
	if l.Version == 2 {
		err = setV2Limits(cg.dirs[0], lim)
		if err == nil {
			err = attachDeviceProgram(cg.dirs[0], devices)
		}
	} else {
		err = setV1Limits(cg.byController, lim, devices)
	}
	if err != nil {
		cg.destroy()
		return nil, err
	}
	return cg, nil
}

// PrepareParent readies a v2 layout's parent of containers' cgroups ahead
// of the first start: the controllers delegated down to it and its setup
// cgroup made, which the first start would otherwise do (enabling a
// controller waits for the kernel's RCU grace periods: on a one-CPU board
// under QEMU, a fifth of the first start). Each start still checks both,
// so calling it is never required. Then, when PID 1 is in InitCgroup
// (PlaceInit, called before), it sets that cgroup's CPU weight. It does
// nothing on v1.
func (l *Layout) PrepareParent() error {
	if l.Version != 2 {
		return nil
	}
	if err := enableV2Controllers(l.Unified, filepath.Join(l.Unified, CgroupParent)); err != nil {
		return err
	}
	if err := os.MkdirAll(l.setupCgroup(), 0o755); err != nil {
		return fmt.Errorf("create setup cgroup: %w", err)
	}
	return l.weighInit()
}

// makeDirs creates cg's directories, after the v2 parent's controllers
// and setup cgroup, or the check that v1 has the controllers lim needs.
func (l *Layout) makeDirs(cg *cgroup, lim Limits) error {
	if l.Version == 2 {
		if err := enableV2Controllers(l.Unified, filepath.Join(l.Unified, CgroupParent)); err != nil {
			return err
		}
		if err := os.MkdirAll(l.setupCgroup(), 0o755); err != nil {
			return fmt.Errorf("create setup cgroup: %w", err)
		}
	} else if err := l.checkV1(lim); err != nil {
		return fmt.Errorf("cgroup %s: %w", cg.name, err)
	}
	for _, dir := range cg.dirs {
		if err := makeCgroupDir(dir); err != nil {
			return err
		}
	}
	return nil
}

// makeCgroupDir creates the cgroup directory dir, its parent too when
// missing, after removing a leftover of the same name.
func makeCgroupDir(dir string) error {
	err := unix.Mkdir(dir, 0o755)
	if errors.Is(err, unix.EEXIST) {
		if err := removeCgroupDir(dir); err != nil {
			return fmt.Errorf("remove leftover cgroup %s: %w", dir, err)
		}
		err = unix.Mkdir(dir, 0o755)
	}
	if errors.Is(err, unix.ENOENT) {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	return nil
}

// checkV1 fails when a limit needs a v1 controller that is not mounted.
func (l *Layout) checkV1(lim Limits) error {
	need := map[string]bool{
		"memory": lim.Memory > 0 || lim.MemoryHigh > 0, "pids": lim.Pids > 0,
		"cpu": lim.CPUs != nil || lim.CPUWeight != nil, "cpuset": lim.CPUSet != "",
		"blkio": lim.IOWeight != nil || len(lim.IOMax) > 0, "devices": true,
	}
	for c, needed := range need {
		if _, ok := l.Controllers[c]; needed && !ok {
			return fmt.Errorf("the %s controller is not mounted (is it enabled on the kernel command line?)", c)
		}
	}
	return nil
}

// SetupCgroup is the v2 cgroup, beside the containers', in which each
// container's init is born and runs until it joins the container's cgroup.
const SetupCgroup = ".setup"

// setupCgroup returns the setup cgroup's directory on a v2 layout. Its
// name cannot be a container's: those start with a letter or digit.
func (l *Layout) setupCgroup() string {
	return filepath.Join(l.Unified, CgroupParent, SetupCgroup)
}

// destroy kills whatever still runs in the cgroup and removes it.
func (cg *cgroup) destroy() error {
	var errs []error
	for _, dir := range cg.dirs {
		if err := removeCgroupDir(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
		}
	}
	if len(errs) == 0 {
		unlockCgroup(cg.lock) // kept while a process may be left in it
		cg.lock = nil
	}
	return errors.Join(errs...)
}

// removeCgroupDir kills every process in dir and removes it. Processes
// that were just killed stay in the cgroup until they are reaped, so rmdir
// is retried for a short while.
func removeCgroupDir(dir string) error {
	// Usually empty already: when a container's first process exits, the
	// kernel kills the rest of its PID namespace before the exit is
	// reported.
	if err := unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		killCgroupProcs(dir)
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}
