package cli

import (
	"flag"
	"fmt"

	"berth/boot"
)

// bootMain is `berth boot`: the PID 1 sequence on a development host,
// minus the host-wide steps (early mounts, leaving the initramfs, reboot).
func bootMain(args []string) int {
	fs := flag.NewFlagSet("boot", flag.ContinueOnError)
	config := fs.String("config", boot.DefaultConfig, "config `FILE`")
	state := fs.String("state", boot.DefaultStateDir, "state `DIR`: unpacked root filesystems")
	socket := fs.String("socket", boot.DefaultSocket, "control `SOCKET` for berth ps, logs, stop...")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: berth boot [--config FILE] [--state DIR] [--socket SOCKET]\n\nRuns the config's containers as PID 1 would, until they have all exited or\nberth gets SIGINT/SIGTERM. Exit status 0 when every container exited 0.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return exitUsage
	}
	return boot.Main(boot.Options{ConfigPath: *config, StateDir: *state, Socket: *socket})
}
