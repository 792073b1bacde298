// Package cli is berth's command line: one verb per file group (run,
// image, check, boot, the control verbs). main calls Main; tests call it
// in process or run the built binary as a user would.
package cli

import (
	"fmt"
	"os"
	"sort"

	"berth/boot"
)

// Exit statuses shared by every verb. berth run passes the container's own
// status through instead, so its errors use 125 (see run.go).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// verb is one CLI command: it gets the arguments after its name and returns
// the process exit status.
type verb struct {
	run     func(args []string) int
	summary string
}

var verbs map[string]verb

func init() {
	verbs = map[string]verb{
		"boot":    {bootMain, "boot a config on this host, as PID 1 would (containers, supervision, shutdown)"},
		"run":     {runMain, "run one command in a container under limits"},
		"check":   {checkMain, "validate a config file"},
		"image":   {imageMain, "pack, unpack and inspect images"},
		"board":   {boardMain, "show the detected board and why"},
		"version": {versionMain, "print berth's version"},
		// Control verbs, over the control socket of a running berth.
		"ps":       {psMain, "list the containers: state, pid, uptime, restarts, memory, last exit"},
		"logs":     {logsMain, "show a container's output: logs [-f] [-n N] NAME"},
		"start":    {ctlNameMain("start"), "start a stopped container"},
		"stop":     {ctlNameMain("stop"), "stop a container (its stop_signal, then SIGKILL)"},
		"restart":  {ctlNameMain("restart"), "stop and start a container"},
		"status":   {statusMain, "show the board, uptime, images and cgroup layout"},
		"reload":   {ctlMain("reload"), "re-read the config: changed containers restart"},
		"reboot":   {ctlMain("reboot"), "stop the containers and reboot"},
		"poweroff": {ctlMain("poweroff"), "stop the containers and power off"},
		"debug":    {debugMain, "test hooks of a berth booted with berth.debug: debug hang | debug signal NAME"},
	}
}

// IsVerb reports whether s names a verb.
func IsVerb(s string) bool {
	_, ok := verbs[s]
	return ok
}

// Main runs the verb named by args[1] with the rest of args and returns
// the process exit status.
func Main(args []string) int {
	if len(args) < 2 {
		usage()
		return exitUsage
	}
	name := args[1]
	switch name {
	case "-h", "--help", "help":
		usage()
		return exitOK
	case "--version", "-version":
		return versionMain(nil)
	}
	v, ok := verbs[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "berth: unknown command %q\nrun 'berth help' for the list of commands\n", name)
		return exitUsage
	}
	return v.run(args[2:])
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: berth COMMAND [ARGS...]\n\ncommands:")
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", n, verbs[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nrun 'berth COMMAND -h' for a command's flags")
}

// versionMain is `berth version`.
func versionMain(args []string) int {
	if len(args) != 0 {
		fmt.Fprintln(os.Stderr, "usage: berth version")
		return exitUsage
	}
	fmt.Printf("berth %s\n", boot.Version)
	return exitOK
}

// errorf prints a berth error on stderr.
func errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "berth: "+format+"\n", args...)
}
