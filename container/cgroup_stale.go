package container

import (
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// CleanStale removes container cgroups left behind by a berth that was
// killed: with all set (PID 1 at boot, when no container runs yet) every
// cgroup under berth/, otherwise the run-PID cgroups of `berth run`
// processes that no longer exist. It returns the names it removed.
func (l *Layout) CleanStale(all bool) []string {
	names := map[string]bool{}
	var parents []string
	if l.Version == 2 {
		parents = []string{filepath.Join(l.Unified, CgroupParent)}
	} else {
		for point := range l.Hierarchies {
			parents = append(parents, filepath.Join(point, CgroupParent))
		}
	}
	for _, p := range parents {
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			if e.IsDir() && e.Name() != SetupCgroup && (all || staleRun(e.Name())) {
				names[e.Name()] = true
			}
		}
	}
	var removed []string
	for name := range names {
		dirs, _ := l.cgroupDirs(name)
		ok := true
		for _, d := range dirs {
			if removeCgroupDir(d) != nil {
				ok = false
			}
		}
		if ok {
			removed = append(removed, name)
		}
	}
	sort.Strings(removed)
	return removed
}

// staleRun reports whether name is the cgroup of a berth run process that
// is gone.
func staleRun(name string) bool {
	pid, ok := runPid(name)
	return ok && pid > 0 && syscall.Kill(pid, 0) == syscall.ESRCH
}
