package boot

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"berth/internal/mountinfo"
)

// shutdown ends the boot. As PID 1 it kills whatever still runs, syncs,
// unmounts and calls reboot(2) with action; it never returns. Otherwise it
// returns status.
func (b *booter) shutdown(action Action, status int) int {
	b.stopClock() // as PID 1 the time is saved, while the state is mounted
	if !b.opts.PID1 {
		return status
	}
	defer func() {
		// Not even a panic here may end PID 1.
		if r := recover(); r != nil {
			b.log.Printf("panic during shutdown: %v", r)
			b.halt(action)
		}
	}()
	// A board's power-off may need a module still loading; a load that
	// hangs (a driver's probe) must not hold the power-off for good.
	b.finishModules()
	// 1. Every process left (orphans, stragglers): SIGTERM, then SIGKILL.
	b.killAll(2 * time.Second)

	// 2. Flush dirty data, bounded: a hung device must not hang shutdown.
	b.log.Printf("syncing")
	done := make(chan struct{})
	go func() { unix.Sync(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		b.log.Printf("sync did not finish within 10s; going on")
	}

	// 3. Unmount everything but /, most recent first, lazily when busy.
	unmountAll(b.log)

	// 4. reboot(2).
	b.halt(action)
	return 0
}

// killAll signals every process but PID 1 and reaps them, for at most
// grace before SIGKILL. Only PID 1 uses it: a process not yet reaped is
// always a descendant of PID 1, so "no child left" means none is left.
func (b *booter) killAll(grace time.Duration) {
	if !b.reaper.reap() {
		return
	}
	_ = syscall.Kill(-1, syscall.SIGTERM)
	if b.waitChildren(grace) {
		return
	}
	b.log.Printf("processes left after %s: sending SIGKILL", grace)
	_ = syscall.Kill(-1, syscall.SIGKILL)
	b.waitChildren(time.Second)
}

// waitChildren reaps until no child is left or timeout passes, and
// reports whether none is left.
func (b *booter) waitChildren(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !b.reaper.reap() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// unmountAll unmounts every mount but / in reverse mount order, detaching
// the busy ones, then remounts / read-only.
func unmountAll(log *Logger) {
	mounts, _ := mountinfo.Read()
	for i := len(mounts) - 1; i >= 0; i-- {
		p := mounts[i].Point
		if p == "/" {
			continue
		}
		if err := unix.Unmount(p, 0); err != nil {
			_ = unix.Unmount(p, unix.MNT_DETACH)
		}
	}
	_ = unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
	log.Printf("filesystems unmounted")
}

// halt calls reboot(2) and, should that fail, waits forever: PID 1 must
// not exit.
func (b *booter) halt(action Action) {
	var cmd uint32 = unix.LINUX_REBOOT_CMD_POWER_OFF
	switch action {
	case Reboot:
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	case Halt:
		cmd = unix.LINUX_REBOOT_CMD_HALT
	}
	if b.watchdog != nil {
		// A clean shutdown disarms the watchdog (the magic close).
		if err := b.watchdog.close(); err != nil {
			b.log.Printf("watchdog magic close: %v", err)
		}
	}
	b.log.Printf("%s", action)
	// The last lines reach a console that works; a stuck one does not stop
	// the reboot.
	if !b.log.Flush(consoleFlushWait) {
		b.log.Printf("the console did not take the last lines within %s", consoleFlushWait)
	}
	// The raw call: the commands do not fit unix.Reboot's int on 32-bit ARM.
	_, _, err := unix.Syscall6(unix.SYS_REBOOT, unix.LINUX_REBOOT_MAGIC1, unix.LINUX_REBOOT_MAGIC2, uintptr(cmd), 0, 0, 0)
	b.log.Printf("reboot(2) failed: %v; waiting forever", err)
	for {
		time.Sleep(time.Hour)
	}
}
