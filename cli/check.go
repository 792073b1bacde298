package cli

import (
	"errors"
	"fmt"

	"berth/boot"
)

// checkMain is `berth check FILE`: exit status 0 when the config is valid,
// 2 when it is not, with every problem on stderr as FILE:LINE: KEY: message.
func checkMain(c *ctx, args []string) int {
	cmd := c.command("check", "FILE", "Validates a berth config: every problem on stderr as FILE:LINE: KEY: message.\nExit status: 0 valid, 2 invalid.")
	pos, status := cmd.parse(args, 1, 1)
	if status >= 0 {
		return status
	}
	cfg, err := boot.LoadConfig(pos[0])
	if err != nil {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				fmt.Fprintln(c.stderr, e)
			}
		} else {
			fmt.Fprintln(c.stderr, err)
		}
		return exitUsage
	}
	fmt.Fprintf(c.stdout, "%s: ok, %s\n", boot.DisplayPath(pos[0]), plural(len(cfg.Container), "container"))
	if len(cfg.Container) == 0 {
		// Valid (a first boot may have nothing to run yet), but berth
		// boot ends at once with it, and berth apply refuses it.
		fmt.Fprintf(c.stderr, "%s: note: no [[container]]: berth boot ends at once (as PID 1: it powers off), and berth apply refuses this file\n", boot.DisplayPath(pos[0]))
	}
	return exitOK
}
