// Command isolated is the floor (bench/boot/floor) keeping berth's
// isolation: the same steps to the demo's first container output, but
// the container is started as berth starts it, with berth's container
// package (container.Start) and the web container's command, environment
// and limits from the demo config, every other field of its spec at the
// default berth leaves it at — its cgroup with the demo's limits and the
// device program, every namespace, pivot_root, /proc and /dev, masked
// paths, capabilities, no_new_privs and Docker's default seccomp
// profile. Like berth it first makes the root a bind mount of the
// initramfs: pivot_root cannot leave the kernel's rootfs.
//
// What it takes beyond the floor is the cost of berth's isolation; what
// berth takes beyond it is the rest of berth's boot (board, config,
// supervision, the image cache).
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"berth/bench/boot/floor/steps"
	"berth/container"
)

func main() { steps.Run(leaveInitramfs, run) }

func run() error {
	merged, err := steps.ImageAndOverlay()
	if err != nil {
		return err
	}
	steps.Logf("floor: step overlay")
	return start(merged)
}

// leaveInitramfs makes the root a bind mount of the initramfs, as berth
// does (boot/switchroot.go).
func leaveInitramfs() error {
	const dir = "/newroot"
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("leave initramfs: %w", err)
	}
	if err := unix.Mount("/", dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("leave initramfs: bind / to %s: %w", dir, err)
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("leave initramfs: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("leave initramfs: move %s to /: %w", dir, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("leave initramfs: chroot: %w", err)
	}
	return unix.Chdir("/")
}

// start starts the container as berth starts the demo's web container
// (the demo's command, environment and limits, every default of
// isolation, as boot/config_container.go's spec leaves them), logs its
// first line as berth does and waits for it.
func start(root string) error {
	layout, err := container.DetectCgroups()
	if err != nil {
		return err
	}
	out, w, err := os.Pipe()
	if err != nil {
		return err
	}
	spec := container.Spec{Name: steps.Name, Rootfs: root, Args: steps.Command, Env: steps.Env,
		Limits: container.Limits{Memory: steps.Memory, Pids: steps.Pids}}
	c, err := container.Start(layout, spec, container.Options{Stdout: w, Stderr: w})
	if err != nil {
		return fmt.Errorf("start %s: %w", steps.Command[0], err)
	}
	steps.Logf("floor: step started")
	w.Close()
	steps.Relay(out)
	_, err = c.Wait()
	return err
}
