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
	rss   []int64 // peak RSS in KiB (ru_maxrss of the child)
}

func (r *result) median() time.Duration {
	s := append([]time.Duration{}, r.times...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (r *result) maxRSS() int64 {
	var m int64
	for _, v := range r.rss {
		m = max(m, v)
	}
	return m
}

// runOnce runs a tool into a fresh dest under tmpfs and returns its wall
// time and peak RSS; dest is removed afterwards (not timed).
func runOnce(t tool, tmpfs string) (time.Duration, int64, error) {
	dest := filepath.Join(tmpfs, "dest")
	if t.mkdest {
		if err := os.Mkdir(dest, 0o755); err != nil {
			return 0, 0, err
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
		return 0, 0, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return elapsed, int64(ru.Maxrss), nil
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
