package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"berth/board"
	"berth/boot"
	"berth/container"
)

// The control verbs talk to a running berth over its control socket
// ($BERTH_SOCKET or /run/berth.sock): from the host, or from a management
// container that has the socket and the berth binary bind-mounted.

// ctlCommand is a control verb's command with --json and --socket.
type ctlCommand struct {
	*command
	asJSON *bool
	socket *string
	// steps, if set, is where call asks berth to send the request's
	// steps (boot.Request.Progress) and prints them, stamped.
	steps io.Writer
}

func (c *ctx) ctlCommand(name, synopsis, about string) *ctlCommand {
	cmd := &ctlCommand{command: c.command(name, synopsis, about)}
	cmd.asJSON = cmd.fs.Bool("json", false, "print JSON for scripts")
	cmd.socket = cmd.fs.String("socket", boot.SocketPath(), "berth's control `SOCKET` (or $BERTH_SOCKET)")
	return cmd
}

// call sends req and returns berth's one answer. With steps set, it asks
// for the request's steps too and prints each there as it comes; a step
// it did not ask for is dropped, never taken for the answer.
func (cmd *ctlCommand) call(req boot.Request) (boot.Response, int) {
	var resp boot.Response
	req.Progress = cmd.steps != nil
	err := boot.Call(*cmd.socket, req, func(r boot.Response) error {
		if r.Progress == "" {
			resp = r
		} else if cmd.steps != nil {
			fmt.Fprintf(cmd.steps, "%s %s: %s\n", time.Now().Format("15:04:05"), cmd.name, r.Progress)
		}
		return nil
	})
	if err != nil {
		cmd.jsonError(err)
		return resp, exitFailure
	}
	return resp, exitOK
}

// jsonError reports err on stderr and, with --json, as {"error": …} on
// stdout too, on one line (as berth stats -f --json and berth logs
// --json write theirs): a script that asked for JSON gets an answer.
func (cmd *ctlCommand) jsonError(err error) {
	cmd.c.errorf("%v", err)
	if cmd.asJSON != nil && *cmd.asJSON {
		json.NewEncoder(cmd.c.stdout).Encode(boot.Response{Error: err.Error()})
	}
}

// printJSON writes v as indented JSON.
func (c *ctx) printJSON(v any) int {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFailure
	}
	return exitOK
}

// message prints a verb's answer: its message, or all of it as JSON.
func (cmd *ctlCommand) message(resp boot.Response) int {
	if *cmd.asJSON {
		return cmd.c.printJSON(resp)
	}
	fmt.Fprintln(cmd.c.stdout, resp.Message)
	return exitOK
}

// ctlMain is reload, rollback, reboot and poweroff.
func ctlMain(c *ctx, verbName, about string, args []string) int {
	cmd := c.ctlCommand(verbName, "[--json]", about)
	if _, status := cmd.parse(args, 0, 0); status >= 0 {
		return status
	}
	resp, code := cmd.call(boot.Request{Verb: verbName})
	if code != exitOK {
		return code
	}
	return cmd.message(resp)
}

// ctlNameMain is start, stop and restart. stop and restart wait until the
// container has stopped, at most its stop_timeout (or -t) and a grace.
func ctlNameMain(c *ctx, verbName, about string, args []string) int {
	synopsis := "[--json] NAME"
	if verbName != "start" {
		synopsis = "[-t SECONDS] [--json] NAME"
	}
	cmd := c.ctlCommand(verbName, synopsis, about)
	var timeout *int64 // 64 bits on every platform: up to 292 years
	if verbName != "start" {
		timeout = cmd.fs.Int64("t", 0, "seconds to wait for the stop signal to work before SIGKILL (default: the container's stop_timeout)")
		cmd.fs.Int64Var(timeout, "time", 0, "same as -t")
	}
	pos, status := cmd.parse(args, 1, 1)
	if status >= 0 {
		return status
	}
	req := boot.Request{Verb: verbName, Name: pos[0]}
	if timeout != nil && flagGiven(cmd.fs, "t", "time") {
		if *timeout < 0 || *timeout > boot.MaxStopSeconds {
			return cmd.fail("-t %d: want 0 to %d seconds", *timeout, boot.MaxStopSeconds)
		}
		req.Timeout = timeout
	}
	resp, code := cmd.call(req)
	if code != exitOK {
		return code
	}
	return cmd.message(resp)
}

func psMain(c *ctx, args []string) int {
	cmd := c.ctlCommand("ps", "[--json]", "Lists the containers: state, health, pid, uptime, restarts, memory (use / limit), address and published ports, last exit.\nWith --json, each running container's stats as berth stats --json gives them.")
	if _, status := cmd.parse(args, 0, 0); status >= 0 {
		return status
	}
	resp, code := cmd.call(boot.Request{Verb: "ps"})
	if code != exitOK {
		return code
	}
	if *cmd.asJSON {
		if resp.Processes == nil {
			resp.Processes = []boot.Process{}
		}
		return c.printJSON(resp.Processes)
	}
	printProcesses(c.stdout, resp.Processes)
	return exitOK
}

// printProcesses is berth ps's table of procs. A state's detail, a
// health and a last exit may carry text berth did not write (an image's
// command in "could not start: exec …", a registry's answer while an
// image waits): each is a cell.
func printProcesses(out io.Writer, procs []boot.Process) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSTATE\tHEALTH\tPID\tUPTIME\tRESTARTS\tMEMORY\tADDRESS\tPORTS\tLAST EXIT")
	for _, p := range procs {
		pid, up, mem := "-", "-", "-"
		if p.Pid > 0 {
			pid = fmt.Sprint(p.Pid)
			up = (time.Duration(p.UptimeSec) * time.Second).String()
			mem = container.FormatSize(p.Memory)
			if p.MemoryLimit > 0 {
				mem += " / " + container.FormatSize(p.MemoryLimit)
			}
		}
		state := p.State
		if p.Detail != "" {
			state += " (" + p.Detail + ")"
		}
		last := orDash(cell(p.LastExit))
		addr, ports := orDash(p.Address), orDash(strings.Join(p.Ports, ","))
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", p.Name, cell(state), orDash(cell(p.Health)), pid, up, p.Restarts, mem, addr, ports, last)
	}
	w.Flush()
}

// maxCell is the most characters of text berth did not write that a
// table cell shows; --json gives it whole.
const maxCell = 240

// cell is text berth did not write, for a table cell: its control
// characters escaped (boot.EscapeText: it can neither drive the admin's
// terminal nor start a column or a row) and cut to maxCell characters.
func cell(s string) string {
	// Invalid UTF-8 as U+FFFD, as --json shows it: a raw 0xff is
	// text/tabwriter's escape character, and would join columns.
	s = boot.EscapeText(strings.ToValidUTF8(s, "\uFFFD"))
	if utf8.RuneCountInString(s) <= maxCell {
		return s
	}
	return string([]rune(s)[:maxCell]) + "…"
}

func logsMain(c *ctx, args []string) int {
	cmd := c.ctlCommand("logs", "[-f] [-n N] [-t] [--raw] [--json] NAME", "Shows a container's output from its log ring; -f follows it.")
	follow := cmd.fs.Bool("f", false, "follow: keep printing new lines")
	n := cmd.fs.Int("n", 0, "only the last `N` lines (default all the ring holds; 0: none, with -f only the lines to come)")
	stamps := cmd.fs.Bool("t", false, "prefix each line with its time")
	raw := cmd.fs.Bool("raw", false, "the bytes as written even on a terminal (default there: control characters escaped, as on the console)")
	pos, status := cmd.parse(args, 1, 1)
	if status >= 0 {
		return status
	}
	lines := *n // the request's: 0 all, negative none
	switch {
	case !flagGiven(cmd.fs, "n"):
		lines = 0
	case *n < 0:
		return cmd.fail("-n %d: want 0 or more lines", *n)
	case *n == 0:
		lines = -1
	}
	enc := json.NewEncoder(c.stdout)
	// A container's bytes must not drive the admin's terminal (set its
	// title, clear it, forge a line after a carriage return, write its
	// clipboard): there they are escaped; piped, they are as written.
	escape := !*raw && !*cmd.asJSON && isTerminal(c.stdout)
	err := boot.Call(*cmd.socket, boot.Request{Verb: "logs", Name: pos[0], Lines: lines, Follow: *follow}, func(r boot.Response) error {
		for _, l := range r.Lines {
			if escape {
				l.Text = boot.EscapeLine(l.Text)
			}
			var err error
			switch {
			case *cmd.asJSON:
				err = enc.Encode(l)
			case *stamps:
				_, err = fmt.Fprintf(c.stdout, "%s %s\n", l.Time.Format(time.RFC3339Nano), l.Text)
			default:
				_, err = fmt.Fprintln(c.stdout, l.Text)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		cmd.jsonError(err)
		return exitFailure
	}
	return exitOK
}

func statusMain(c *ctx, args []string) int {
	cmd := c.ctlCommand("status", "[--json]", "Shows berth's version, the board, kernel, uptime, cgroup layout, watchdog, clock, data partition, config, images, health checks and network interfaces.")
	if _, status := cmd.parse(args, 0, 0); status >= 0 {
		return status
	}
	resp, code := cmd.call(boot.Request{Verb: "status"})
	if code != exitOK || resp.Status == nil {
		return exitFailure
	}
	st := resp.Status
	if *cmd.asJSON {
		return c.printJSON(st)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "berth\t%s (PID 1: %v, RSS %s)\n", st.Version, st.PID1, container.FormatSize(st.RSS))
	fmt.Fprintf(w, "board\t%s\n", describeBoard(st.Board))
	fmt.Fprintf(w, "kernel\t%s\n", st.Kernel)
	fmt.Fprintf(w, "uptime\t%s (berth), %s (machine)\n", seconds(st.BerthUptimeSec), seconds(st.UptimeSec))
	fmt.Fprintf(w, "cgroups\t%s\n", st.Cgroups)
	fmt.Fprintf(w, "watchdog\t%s\n", st.Watchdog)
	printClock(w, st.Clock)
	printStorage(w, st.Storage)
	fmt.Fprintf(w, "config\t%s\n", st.Config)
	printGeneration(w, st.Generation)
	fmt.Fprintf(w, "containers\t%d running of %d\n", st.Running, st.Containers)
	for _, im := range st.Images {
		fmt.Fprintf(w, "image\t%s: %s\n", im.Container, im.Path)
	}
	printSecurity(w, st)
	for _, h := range st.Health {
		fmt.Fprintf(w, "health\t%s\n", describeHealth(h))
	}
	for _, n := range st.Network {
		fmt.Fprintf(w, "interface\t%s\n", describeInterface(n))
	}
	w.Flush()
	return exitOK
}

// printSecurity shows the kernel's security modules, each policy file of
// [security] and how its load went, and each container's AppArmor
// profile and SELinux context.
func printSecurity(w io.Writer, st *boot.Status) {
	if sec := st.Security; sec != nil {
		fmt.Fprintf(w, "security\t%s; landlock ABI %d\n", orNone(sec.LSMs), sec.LandlockABI)
		for _, p := range sec.Policies {
			state := "loaded"
			if !p.Loaded {
				state = "NOT LOADED: " + p.Error
			}
			fmt.Fprintf(w, "policy\t%s %s: %s\n", p.Module, p.Path, state)
		}
	}
	for _, im := range st.Images {
		var labels []string
		if im.AppArmor != "" {
			labels = append(labels, "apparmor "+im.AppArmor)
		}
		if im.SELinuxLabel != "" {
			labels = append(labels, "selinux "+im.SELinuxLabel)
		}
		if len(labels) > 0 {
			fmt.Fprintf(w, "confined\t%s: %s\n", im.Container, strings.Join(labels, ", "))
		}
	}
}

// describeInterface is one line of berth status for an interface:
// "eth0 (52:54:00:12:34:56) dhcp bound: 10.0.2.15/24, gateway 10.0.2.2,
// dns 10.0.2.3, lease 24h0m0s expires in 23h59m12s".
func describeInterface(n board.InterfaceStatus) string {
	var b strings.Builder
	b.WriteString(n.Config)
	if n.Name != "" && n.Name != n.Config {
		fmt.Fprintf(&b, " = %s", n.Name)
	}
	if n.MAC != "" {
		fmt.Fprintf(&b, " (%s)", n.MAC)
	}
	fmt.Fprintf(&b, " %s %s", n.Method, n.State)
	var parts []string
	for _, a := range n.Addresses {
		if !strings.Contains(a, ":") { // IPv4: the link-local IPv6 one says little
			parts = append(parts, a)
		}
	}
	if n.Gateway != "" {
		parts = append(parts, "gateway "+n.Gateway)
	}
	if len(n.DNS) > 0 {
		parts = append(parts, "dns "+strings.Join(n.DNS, " "))
	}
	if l := n.Lease; l != nil && l.Expires == nil {
		parts = append(parts, "lease forever")
	} else if l != nil {
		parts = append(parts, fmt.Sprintf("lease %s expires in %s", seconds(float64(l.Seconds)), seconds(l.ExpiresInSec)))
	}
	if len(parts) > 0 {
		b.WriteString(": " + strings.Join(parts, ", "))
	}
	return b.String()
}

// describeBoard is berth status's board line: "QEMU Standard PC (i440FX
// + PIIX, 1996) (profile qemu-x86)", the model (a firmware's string)
// escaped.
func describeBoard(b board.Board) string {
	return fmt.Sprintf("%s (profile %s)", boot.EscapeText(b.Model), b.Profile.Name)
}

// seconds renders a duration in whole seconds: "1h2m3s".
func seconds(s float64) string { return (time.Duration(s) * time.Second).String() }

func boardMain(c *ctx, args []string) int {
	cmd := c.command("board", "[--list] [--json]", "Shows the detected board, its profile and why it matched; --list: every\nprofile berth knows, what selects it and what it sets up.")
	asJSON := cmd.fs.Bool("json", false, "print JSON for scripts")
	list := cmd.fs.Bool("list", false, "list every board profile")
	if _, status := cmd.parse(args, 0, 0); status >= 0 {
		return status
	}
	if *list {
		return c.listProfiles(*asJSON)
	}
	b := board.Detect()
	mem := board.HasMemoryCgroup()
	if *asJSON {
		return c.printJSON(struct {
			board.Board
			MemoryCgroup bool `json:"memory_cgroup"`
		}{b, mem})
	}
	printBoard(c.stdout, b, mem)
	return exitOK
}

// printBoard is berth board's table of b. The model and compatible
// strings come from the firmware and are shown escaped (boot.EscapeText);
// --json needs no such care.
func printBoard(out io.Writer, b board.Board, mem bool) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "model\t%s\n", boot.EscapeText(b.Model))
	fmt.Fprintf(w, "from\t%s\n", b.Source)
	if len(b.Compatible) > 0 {
		fmt.Fprintf(w, "compatible\t%s\n", boot.EscapeText(strings.Join(b.Compatible, ", ")))
	}
	fmt.Fprintf(w, "arch\t%s\n", b.Arch)
	fmt.Fprintf(w, "profile\t%s (%s)\n", b.Profile.Name, b.Reason)
	fmt.Fprintf(w, "console\t%s\n", b.Profile.Console)
	fmt.Fprintf(w, "watchdog\t%s\n", orNone(b.Profile.Watchdog))
	fmt.Fprintf(w, "modules\t%s\n", orNone(strings.Join(b.Profile.Modules, " ")))
	fmt.Fprintf(w, "memory cgroup\t%v\n", mem)
	if b.Profile.Notes != "" {
		fmt.Fprintf(w, "notes\t%s\n", b.Profile.Notes)
	}
	w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// debugMain is `berth debug hang` and `berth debug signal NAME`: test hooks
// that a berth booted with berth.debug accepts (a wedged supervisor for the
// watchdog test; a signal to PID 1 from inside a container).
func debugMain(c *ctx, args []string) int {
	cmd := c.ctlCommand("debug", "hang | signal NAME", "Test hooks of a berth booted with berth.debug on the kernel command line.")
	pos, status := cmd.parse(args, 1, 2)
	if status >= 0 {
		return status
	}
	req := boot.Request{Verb: "debug-" + pos[0]}
	if len(pos) > 1 {
		req.Name = pos[1]
	}
	resp, code := cmd.call(req)
	if code == exitOK {
		fmt.Fprintln(c.stdout, resp.Message)
	}
	return code
}

// describeHealth is one line of berth status for a container's health
// check: "web: healthy, failing streak 0, last check 2s ago: status 0
// \"OK\"", the output cut to its last line.
func describeHealth(h boot.HealthInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", h.Container, h.Health)
	if !h.Running {
		b.WriteString(" (not running: its last run's)")
	}
	fmt.Fprintf(&b, ", failing streak %d", h.FailingStreak)
	if h.LastCheck != nil && h.LastExitCode != nil {
		prev := ""
		if h.PreviousRun {
			prev = " (its previous run's)"
		}
		fmt.Fprintf(&b, ", last check%s %s ago: status %d", prev, time.Since(*h.LastCheck).Round(time.Second), *h.LastExitCode)
		if out := strings.TrimRight(h.LastOutput, "\n"); out != "" {
			if i := strings.LastIndexByte(out, '\n'); i >= 0 {
				out = out[i+1:]
			}
			b.WriteString(" " + container.Quote(out))
		}
	}
	return b.String()
}

// flagGiven reports whether any of names was given on the command line.
func flagGiven(fs *flag.FlagSet, names ...string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || slices.Contains(names, f.Name) })
	return given
}
