package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// tool is one way of unpacking an input into dest.
type tool struct {
	name string
	argv func(dest string) []string
	// mkdest: the tool wants dest to exist (tar); umoci wants it absent.
	mkdest bool
	// bundle: dest/rootfs is the tree (umoci unpack writes a bundle).
	bundle bool
}

// result is what the runs of one tool measured.
type result struct {
	times []time.Duration
	cpu   []time.Duration // user + system time of the child and its children
	rss   []int64         // peak RSS in KiB (ru_maxrss of the child)
	vcsw  []int64         // voluntary context switches: the child slept
	ivcsw []int64         // involuntary ones: another task took its CPU
}

// median of any run's measure.
func median[T int64 | time.Duration](v []T) T {
	s := append([]T{}, v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *result) median() time.Duration { return median(r.times) }

func (r *result) maxRSS() int64 {
	var m int64
	for _, v := range r.rss {
		m = max(m, v)
	}
	return m
}

// runAll runs every tool n times, rotating the order every run.
func runAll(tools []tool, tmpfs string, n int) ([]result, error) {
	res := make([]result, len(tools))
	for i := range n {
		for k := range tools {
			t := (i + k) % len(tools)
			if err := runOnce(tools[t], tmpfs, &res[t]); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// runOnce runs a tool into a fresh dest under tmpfs and adds its wall
// time, CPU time, peak RSS and context switches to r (r may be nil); dest
// is removed afterwards (not timed).
func runOnce(t tool, tmpfs string, r *result) error {
	dest := filepath.Join(tmpfs, "dest")
	if t.mkdest {
		if err := os.Mkdir(dest, 0o755); err != nil {
			return err
		}
	}
	defer os.RemoveAll(dest)
	argv := t.argv(dest)
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	if r != nil {
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		r.times = append(r.times, elapsed)
		r.cpu = append(r.cpu, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()))
		r.rss = append(r.rss, int64(ru.Maxrss))
		r.vcsw = append(r.vcsw, ru.Nvcsw)
		r.ivcsw = append(r.ivcsw, ru.Nivcsw)
	}
	return nil
}

// mountTmpfs mounts a tmpfs of the given size at a new directory.
func mountTmpfs(size string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "berth-bench-unpack-")
	if err != nil {
		return "", nil, err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		os.Remove(dir)
		return "", nil, fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return dir, func() {
		syscall.Unmount(dir, syscall.MNT_DETACH)
		os.Remove(dir)
	}, nil
}

// compareTrees checks that two unpacked trees agree on names, types,
// modes, owners, sizes and symlink targets (mtimes of directories
// differ between tools that restore them and those that do not, and are
// left out).
func compareTrees(a, b string) error {
	list := func(root string) (map[string]string, error) {
		out := map[string]string{}
		err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			st := info.Sys().(*syscall.Stat_t)
			desc := fmt.Sprintf("%v %d:%d", info.Mode(), st.Uid, st.Gid)
			if info.Mode().IsRegular() {
				desc += fmt.Sprintf(" %d %d", info.Size(), info.ModTime().Unix())
			}
			if info.Mode()&os.ModeSymlink != 0 {
				t, _ := os.Readlink(p)
				desc += " -> " + t
			}
			out[rel] = desc
			return nil
		})
		return out, err
	}
	la, err := list(a)
	if err != nil {
		return err
	}
	lb, err := list(b)
	if err != nil {
		return err
	}
	for p, d := range la {
		if lb[p] != d {
			return fmt.Errorf("%s: %q vs %q", p, d, lb[p])
		}
	}
	if len(la) != len(lb) {
		return fmt.Errorf("%d entries vs %d", len(la), len(lb))
	}
	return nil
}
