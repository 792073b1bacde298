package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"berth/boot"
)

// checkMain is `berth check FILE`: exit status 0 when the config is valid,
// 2 when it is not, with every problem on stderr as FILE:LINE: KEY: message.
func checkMain(args []string) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: berth check FILE\n\nValidates a berth config. Exit status: 0 valid, 2 invalid.")
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	cfg, err := boot.LoadConfig(fs.Arg(0))
	if err != nil {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				fmt.Fprintln(os.Stderr, e)
			}
		} else {
			fmt.Fprintln(os.Stderr, err)
		}
		return exitUsage
	}
	fmt.Printf("%s: ok, %d containers\n", fs.Arg(0), len(cfg.Container))
	return exitOK
}
