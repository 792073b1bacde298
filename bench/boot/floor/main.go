// Command floor is the least a PID 1 must do, under QEMU's TCG, before
// the demo's first container prints: the boot benchmark's floor for
// issue 11's target (berth start -> first container output).
//
// It boots the demo initramfs in berth's place and does only the steps
// on the path to the first container's first line, each in its simplest
// form, with the same Go runtime and zstd decoder as berth (package
// steps): the filesystems a container needs, the overlay module, the
// unpack of the first container's image into a tmpfs, its overlay, its
// cgroup with the demo's limits, and a start in new namespaces (chroot,
// not pivot_root; no seccomp filter, capabilities, devices, /proc or
// hostname in the container). It logs its start and the container's
// first line as berth does ("floor: started", "floor: step NAME", "web |
// ...", which bench/boot/console.go reads), then powers off.
//
// Anything berth does on that path that the floor does not is berth's
// own cost; what the floor takes, any init takes on this machine.
// bench/boot/floor/isolated is the same floor keeping berth's isolation.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"berth/bench/boot/floor/steps"
)

func main() { steps.Run(nil, run) }

func run() error {
	merged, err := steps.ImageAndOverlay()
	if err != nil {
		return err
	}
	cg, err := makeCgroup(steps.Name)
	if err != nil {
		return err
	}
	defer cg.Close()
	steps.Logf("floor: step overlay and cgroup")
	return start(merged, cg)
}

// makeCgroup makes the container's cgroup with the demo's limits and
// returns it open, for CLONE_INTO_CGROUP.
func makeCgroup(name string) (*os.File, error) {
	root := "/sys/fs/cgroup"
	if err := os.WriteFile(root+"/cgroup.subtree_control", []byte("+memory +pids"), 0); err != nil {
		return nil, fmt.Errorf("enable memory and pids: %w", err)
	}
	dir := root + "/" + name
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	for file, v := range map[string]string{"memory.max": strconv.Itoa(steps.Memory), "pids.max": strconv.Itoa(steps.Pids)} {
		if err := os.WriteFile(dir+"/"+file, []byte(v), 0); err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, file, err)
		}
	}
	return os.Open(dir)
}

// start runs the container's command in new namespaces, chrooted into
// root and in cgroup cg, logs its first line as berth does, and waits
// for it.
func start(root string, cg *os.File) error {
	out, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := &exec.Cmd{
		Path:   steps.Command[0],
		Args:   steps.Command,
		Env:    append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, steps.Env...),
		Stdout: w,
		Stderr: w,
		SysProcAttr: &syscall.SysProcAttr{
			Chroot: root,
			Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS |
				syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
			UseCgroupFD: true,
			CgroupFD:    int(cg.Fd()),
		},
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", steps.Command[0], err)
	}
	steps.Logf("floor: step started")
	w.Close()
	steps.Relay(out)
	return cmd.Wait()
}
