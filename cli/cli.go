// Package cli is berth's command line: one verb per file group (run,
// image, check, boot, the control verbs). main calls Main; tests call it
// in process or run the built binary as a user would.
package cli

import (
	"fmt"
	"io"
	"os"
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
// the process exit status. A control verb that only names itself to
// berth is ctl, given its name and about.
type verb struct {
	name    string
	run     func(c *ctx, args []string) int
	summary string
	ctl     func(c *ctx, verbName, about string, args []string) int
	about   string
}

// call runs v.
func (v *verb) call(c *ctx, args []string) int {
	if v.ctl != nil {
		return v.ctl(c, v.name, v.about, args)
	}
	return v.run(c, args)
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

// verbs are the commands, by name: a table of data, not init code.
var verbs = [...]verb{
	{name: "apply", run: applyMain, summary: "make a config file the next generation: committed once healthy, else rolled back"},
	{name: "board", run: boardMain, summary: "show the detected board and why, or every profile berth knows (--list)"},
	{name: "boot", run: bootMain, summary: "boot a config on this host, as PID 1 would (containers, supervision, shutdown)"},
	{name: "check", run: checkMain, summary: "validate a config file"},
	{name: "debug", run: debugMain, summary: "test hooks of a berth booted with berth.debug: debug hang | debug signal NAME"},
	{name: "exec", run: execMain, summary: "run a command in a running container: exec [-t] NAME -- CMD [ARG...]"},
	{name: "image", run: imageMain, summary: "pack, unpack, inspect and push images"},
	{name: "initramfs", run: initramfsMain, summary: "write an appliance's boot artifact: berth, its config, images and modules"},
	{name: "logs", run: logsMain, summary: "show a container's output: logs [-f] [-n N] NAME"},
	{name: "poweroff", ctl: ctlMain, about: "Stops the containers and powers off.", summary: "stop the containers and power off"},
	{name: "ps", run: psMain, summary: "list the containers: state, pid, uptime, restarts, memory, last exit"},
	{name: "pull", run: pullMain, summary: "pull an image from an OCI registry into the cache: pull docker://HOST/REPO[:TAG]"},
	{name: "reboot", ctl: ctlMain, about: "Stops the containers and reboots.", summary: "stop the containers and reboot"},
	{name: "reload", ctl: ctlMain, about: "Applies the boot config file as a new generation (see apply).", summary: "apply the boot config file as a new generation"},
	{name: "restart", ctl: ctlNameMain, about: stopAbout + "\nThen starts it again.", summary: "stop and start a container"},
	{name: "rollback", run: rollbackMain, summary: "go back to the previous committed generation"},
	{name: "run", run: runMain, summary: "run one command in a container under limits"},
	{name: "start", ctl: ctlNameMain, about: "Starts a stopped container.", summary: "start a stopped container"},
	{name: "stats", run: statsMain, summary: "show the containers' CPU, memory, OOM kills, pids and block I/O: stats [-f] [NAME...]"},
	{name: "status", run: statusMain, summary: "show the board, uptime, images and cgroup layout"},
	{name: "stop", ctl: ctlNameMain, about: stopAbout, summary: "stop a container and wait until it has stopped"},
	{name: "version", run: versionMain, summary: "print berth's version"},
	{name: "vm", run: vmMain, summary: "boot a config's initramfs in QEMU with the console attached"},
}

// findVerb is the verb named name, or nil.
func findVerb(name string) *verb {
	for i := range verbs {
		if verbs[i].name == name {
			return &verbs[i]
		}
	}
	return nil
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
		v := findVerb(args[min(1, len(args)-1)])
		switch {
		case len(args) > 1 && v != nil:
			// berth help VERB [SUB] is berth VERB [SUB] -h, as is
			// berth -h VERB
			return v.call(c, append(append([]string{}, args[2:]...), "-h"))
		case len(args) > 1 && args[0] == "help":
			fmt.Fprintf(c.stderr, "berth: no help for %q\nrun 'berth help' for the list of commands\n", args[1])
			return exitUsage
		}
		c.usage(c.stdout)
		return exitOK
	case "--version", "-version":
		return versionMain(c, nil)
	}
	v := findVerb(args[0])
	if v == nil {
		fmt.Fprintf(c.stderr, "berth: unknown command %q\nrun 'berth help' for the list of commands\n", args[0])
		return exitUsage
	}
	return v.call(c, args[1:])
}

func (c *ctx) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: berth COMMAND [ARGS...]\n\ncommands:")
	for _, v := range verbs { // sorted by name
		fmt.Fprintf(w, "  %-10s %s\n", v.name, v.summary)
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
