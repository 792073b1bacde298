package container

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// killBatch is how many processes killCgroupProcs holds a pidfd of at
// once: a fork bomb's cgroup may list thousands, PID 1 has 4,096 fds.
const killBatch = 256

// afterProcsRead, when set (tests), runs between the first read of
// cgroup.procs and the kills.
var afterProcsRead func()

// killCgroupProcs sends SIGKILL to every process in dir, using
// cgroup.kill where the kernel has it (5.14+). Without it (cgroup v1, or
// an older kernel) the pids read from cgroup.procs are killed through
// pidfds: each pid is opened as a pidfd, cgroup.procs is read again, and
// only the pidfds whose pid it still lists are signalled. A pid whose
// process exited after the first read and was reused by a process
// outside the cgroup is then not listed (or, when listed, its pidfd
// names the process that exited, and the signal reaches nobody): no
// process outside the container is killed. (pidfds came with Linux 5.3;
// berth needs 5.6.)
func killCgroupProcs(dir string) {
	if writeFile(filepath.Join(dir, "cgroup.kill"), "1") == nil {
		return
	}
	pids := cgroupPids(dir)
	if afterProcsRead != nil {
		afterProcsRead()
	}
	for len(pids) > 0 {
		n := min(len(pids), killBatch)
		killListed(dir, pids[:n])
		pids = pids[n:]
	}
}

// cgroupPids reads the pids cgroup.procs in dir lists: any number, a fork
// bomb has many.
func cgroupPids(dir string) []int {
	data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	var pids []int
	pid := 0
	for _, c := range data {
		if c >= '0' && c <= '9' {
			pid = pid*10 + int(c-'0')
		} else if pid > 0 {
			pids, pid = append(pids, pid), 0
		}
	}
	return pids
}

// killListed kills those of pids that dir's cgroup.procs still lists
// once each is held by a pidfd (see killCgroupProcs). A pid that cannot
// be held for want of fds is killed as read: better a race than a
// container left running.
func killListed(dir string, pids []int) {
	fds := make(map[int]int, len(pids))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for _, pid := range pids {
		if _, dup := fds[pid]; dup {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		switch {
		case err == nil:
			fds[pid] = fd
		case err != unix.ESRCH:
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	for _, pid := range cgroupPids(dir) {
		if fd, ok := fds[pid]; ok {
			_ = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		}
	}
}
