package boot

import (
	"os"

	"berth/board"
	"berth/container"
)

// setupBoard detects the board and starts loading its kernel modules (as
// PID 1), then reads the cgroup layout.
func (b *booter) setupBoard() error {
	b.board = board.Detect()
	b.log.Printf("board: %s (from %s), profile %s (%s)", b.board.Model, b.board.Source, b.board.Profile.Name, b.board.Reason)
	if b.opts.PID1 {
		b.installModprobe()
		b.startModules(b.board.Profile)
	}
	layout, err := container.DetectCgroups()
	if err != nil {
		return err
	}
	b.cgroups = layout
	b.log.Printf("cgroups: %s", layout)
	if removed := layout.CleanStale(b.opts.PID1); len(removed) > 0 {
		b.log.Printf("removed cgroups left by an earlier berth: %v", removed)
	}
	if b.opts.PID1 {
		// Before anything enables a controller: one write.
		if err := layout.PlaceInit(os.Getpid()); err != nil {
			b.log.Printf("warning: cgroups: %v", err)
		}
		// Off the boot's path: the first start checks it again.
		b.goSafe(func() {
			if err := layout.PrepareParent(); err != nil {
				b.log.Printf("warning: cgroups: %v", err)
			}
		})
	}
	if err := layout.EnableIOStats(); err != nil {
		b.log.Printf("warning: berth stats may show no block I/O on some disks: %v", err)
	}
	b.cleanNetwork()
	return nil
}

// installModprobe makes berth the kernel's modprobe, so that the modules
// the kernel asks for by itself (crc32c for libcrc32c, nftables
// expressions, link types) load from /lib/modules.
func (b *booter) installModprobe() {
	self, err := os.Executable()
	if err == nil {
		err = board.InstallModprobe(self)
	}
	if err != nil {
		b.log.Printf("warning: the kernel cannot load modules by itself: %v", err)
		return
	}
	b.log.Debugf("kernel modprobe: %s -> %s", board.ModprobePath, self)
}
