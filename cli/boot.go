package cli

import (
	"berth/boot"
)

// bootMain is `berth boot`: the PID 1 sequence on a development host,
// minus the host-wide steps (early mounts, leaving the initramfs, reboot).
func bootMain(c *ctx, args []string) int {
	cmd := c.command("boot", "[--config FILE] [--state DIR] [--socket SOCKET]",
		"Runs the config's containers as PID 1 would, until they have all ended or\n"+
			"berth gets SIGINT/SIGTERM. Exit status 0 when every container exited 0,\n"+
			"1 otherwise, or when another berth already runs on the same state or socket.")
	config := cmd.fs.String("config", boot.DefaultConfig, "config `FILE`")
	state := cmd.fs.String("state", boot.DefaultStateDir, "state `DIR`: image cache, containers' root filesystems")
	socket := cmd.fs.String("socket", boot.DefaultSocket, "control `SOCKET` for berth ps, logs, stop...")
	if _, status := cmd.parse(args, 0, 0); status >= 0 {
		return status
	}
	return boot.Main(boot.Options{ConfigPath: *config, StateDir: *state, Socket: *socket, Console: c.stdout})
}
