// Command berth is the whole userland of an edge appliance: started by the
// kernel as PID 1 it mounts the early filesystems, reads /etc/berth.toml,
// unpacks each container's image and supervises the containers. Run by hand
// it is the CLI for the same pieces: run a container, pack or unpack an image,
// check a config, or boot a config on a development host.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"

	"berth/boot"
	"berth/container"
)

// Exit statuses shared by every verb. berth run passes the container's own
// status through instead, so its errors use 125 (see cli_run.go).
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

var verbs = map[string]verb{
	"boot":  {bootMain, "boot a config on this host, as PID 1 would (containers, supervision, shutdown)"},
	"run":   {runMain, "run one command in a container under limits"},
	"check": {checkMain, "validate a config file"},
	"image": {imageMain, "pack, unpack and inspect images"},
	"board": {boardMain, "show the detected board and why"},
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

func init() {
	// The container's init is this binary re-executed inside the new
	// namespaces. It must keep the main goroutine on the thread that will
	// call execve, because capabilities, no_new_privs and seccomp are per
	// thread. It never returns.
	if len(os.Args) > 1 && os.Args[1] == container.InitArg {
		runtime.LockOSThread()
		container.Init()
	}
}

func main() {
	// The kernel starts init with no arguments (or ones it did not
	// understand itself). berth run as a container's first process, say
	// "berth ps" in a management container, is PID 1 too, but of its own
	// namespace and with a verb: it must not boot.
	if os.Getpid() == 1 && (len(os.Args) < 2 || !isVerb(os.Args[1])) {
		boot.Main(boot.Options{PID1: true}) // never returns
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(exitUsage)
	}
	name := os.Args[1]
	switch name {
	case "-h", "--help", "help":
		usage()
		os.Exit(exitOK)
	}
	v, ok := verbs[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "berth: unknown command %q\n", name)
		usage()
		os.Exit(exitUsage)
	}
	os.Exit(v.run(os.Args[2:]))
}

func isVerb(s string) bool {
	_, ok := verbs[s]
	return ok
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

// errorf prints a berth error on stderr.
func errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "berth: "+format+"\n", args...)
}
