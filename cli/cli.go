// Package cli is berth's command line: one verb per file group (run,
// image, check, boot, the control verbs). main calls Main; tests call it
// in process or run the built binary as a user would.
package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

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
	run     func(c *ctx, args []string) int
	summary string
}

// ctx is one invocation's standard streams, so tests can run verbs in
// process. berth run hands stdin, and stdout and stderr when they are
// files, to the container as they are.
type ctx struct {
	stdin          *os.File
	stdout, stderr io.Writer
}

// errorf prints a berth error on stderr.
func (c *ctx) errorf(format string, args ...any) {
	// An error may quote what an image, a registry or a container wrote
	// (an index's platform, a config's field): each of its lines has its
	// control characters escaped, as the console escapes a container's,
	// so it cannot drive the admin's terminal.
	lines := strings.Split(fmt.Sprintf(format, args...), "\n")
	for i, l := range lines {
		lines[i] = boot.EscapeLine(l)
	}
	fmt.Fprintf(c.stderr, "berth: %s\n", strings.Join(lines, "\n"))
}

var verbs map[string]verb

func init() {
	verbs = map[string]verb{
		"boot":      {bootMain, "boot a config on this host, as PID 1 would (containers, supervision, shutdown)"},
		"run":       {runMain, "run one command in a container under limits"},
		"check":     {checkMain, "validate a config file"},
		"image":     {imageMain, "pack, unpack, inspect and push images"},
		"pull":      {pullMain, "pull an image from an OCI registry into the cache: pull docker://HOST/REPO[:TAG]"},
		"board":     {boardMain, "show the detected board and why, or every profile berth knows (--list)"},
		"initramfs": {initramfsMain, "write an appliance's boot artifact: berth, its config, images and modules"},
		"vm":        {vmMain, "boot a config's initramfs in QEMU with the console attached"},
		"version":   {versionMain, "print berth's version"},
		// Control verbs, over the control socket of a running berth.
		"ps":       {psMain, "list the containers: state, pid, uptime, restarts, memory, last exit"},
		"stats":    {statsMain, "show the containers' CPU, memory, OOM kills, pids and block I/O: stats [-f] [NAME...]"},
		"logs":     {logsMain, "show a container's output: logs [-f] [-n N] NAME"},
		"exec":     {execMain, "run a command in a running container: exec [-t] NAME -- CMD [ARG...]"},
		"start":    {ctlNameMain("start", "Starts a stopped container."), "start a stopped container"},
		"stop":     {ctlNameMain("stop", stopAbout), "stop a container and wait until it has stopped"},
		"restart":  {ctlNameMain("restart", stopAbout+"\nThen starts it again."), "stop and start a container"},
		"status":   {statusMain, "show the board, uptime, images and cgroup layout"},
		"reload":   {ctlMain("reload", "Applies the boot config file as a new generation (see apply)."), "apply the boot config file as a new generation"},
		"apply":    {applyMain, "make a config file the next generation: committed once healthy, else rolled back"},
		"rollback": {rollbackMain, "go back to the previous committed generation"},
		"reboot":   {ctlMain("reboot", "Stops the containers and reboots."), "stop the containers and reboot"},
		"poweroff": {ctlMain("poweroff", "Stops the containers and powers off."), "stop the containers and power off"},
		"debug":    {debugMain, "test hooks of a berth booted with berth.debug: debug hang | debug signal NAME"},
	}
}

const stopAbout = `Sends the container its stop_signal, SIGKILL to its whole cgroup after
its stop_timeout (or -t SECONDS), and waits until it has stopped.`

// Main runs the verb named by args[1] with the rest of args on the
// process's own streams and returns the process exit status.
func Main(args []string) int {
	return Run(args[1:], os.Stdin, os.Stdout, os.Stderr)
}

// Run runs the verb named by args[0] with the rest of args and returns its
// exit status.
func Run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	c := &ctx{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) < 1 {
		c.usage(c.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		v, known := verbs[args[min(1, len(args)-1)]]
		switch {
		case len(args) > 1 && known:
			// berth help VERB [SUB] is berth VERB [SUB] -h, as is
			// berth -h VERB
			return v.run(c, append(append([]string{}, args[2:]...), "-h"))
		case len(args) > 1 && args[0] == "help":
			fmt.Fprintf(c.stderr, "berth: no help for %q\nrun 'berth help' for the list of commands\n", args[1])
			return exitUsage
		}
		c.usage(c.stdout)
		return exitOK
	case "--version", "-version":
		return versionMain(c, nil)
	}
	v, ok := verbs[args[0]]
	if !ok {
		fmt.Fprintf(c.stderr, "berth: unknown command %q\nrun 'berth help' for the list of commands\n", args[0])
		return exitUsage
	}
	return v.run(c, args[1:])
}

func (c *ctx) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: berth COMMAND [ARGS...]\n\ncommands:")
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, verbs[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'berth COMMAND -h' for a command's flags")
}

// versionMain is `berth version`.
func versionMain(c *ctx, args []string) int {
	cmd := c.command("version", "", "Prints berth's version (also berth --version).")
	if _, status := cmd.parse(args, 0, 0); status >= 0 {
		return status
	}
	fmt.Fprintf(c.stdout, "berth %s\n", boot.Version)
	return exitOK
}
