package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"berth/board"
	"berth/boot"
	"berth/container"
)

// The control verbs talk to a running berth over its control socket
// ($BERTH_SOCKET or /run/berth.sock): from the host, or from a management
// container that has the socket and the berth binary bind-mounted.

// ctlFlags parses the common flags: --json and --socket.
func ctlFlags(name, usage string, args []string) (*flag.FlagSet, *bool, *string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	socket := fs.String("socket", boot.SocketPath(), "berth's control socket")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: berth %s\n", usage)
		fs.PrintDefaults()
	}
	ok := fs.Parse(args) == nil
	return fs, asJSON, socket, ok
}

func call(socket string, req boot.Request) (boot.Response, int) {
	var resp boot.Response
	err := boot.Call(socket, req, func(r boot.Response) error { resp = r; return nil })
	if err != nil {
		errorf("%v", err)
		return resp, exitFailure
	}
	return resp, exitOK
}

func printJSON(v any) int {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFailure
	}
	return exitOK
}

func ctlMain(verbName string) func([]string) int {
	return func(args []string) int {
		fs, asJSON, socket, ok := ctlFlags(verbName, verbName+" [--json]", args)
		if !ok || fs.NArg() != 0 {
			return exitUsage
		}
		resp, code := call(*socket, boot.Request{Verb: verbName})
		if code != exitOK {
			return code
		}
		if *asJSON {
			return printJSON(resp)
		}
		fmt.Println(resp.Message)
		return exitOK
	}
}

func ctlNameMain(verbName string) func([]string) int {
	return func(args []string) int {
		fs, asJSON, socket, ok := ctlFlags(verbName, verbName+" [--json] NAME", args)
		if !ok || fs.NArg() != 1 {
			fs.Usage()
			return exitUsage
		}
		resp, code := call(*socket, boot.Request{Verb: verbName, Name: fs.Arg(0)})
		if code != exitOK {
			return code
		}
		if *asJSON {
			return printJSON(resp)
		}
		fmt.Println(resp.Message)
		return exitOK
	}
}

func psMain(args []string) int {
	fs, asJSON, socket, ok := ctlFlags("ps", "ps [--json]", args)
	if !ok || fs.NArg() != 0 {
		return exitUsage
	}
	resp, code := call(*socket, boot.Request{Verb: "ps"})
	if code != exitOK {
		return code
	}
	if *asJSON {
		return printJSON(resp.Processes)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSTATE\tPID\tUPTIME\tRESTARTS\tMEMORY\tLAST EXIT")
	for _, p := range resp.Processes {
		pid, up := "-", "-"
		if p.Pid > 0 {
			pid = fmt.Sprint(p.Pid)
			up = (time.Duration(p.UptimeSec) * time.Second).String()
		}
		mem := "-"
		if p.Pid > 0 {
			mem = container.FormatSize(p.Memory)
			if p.MemoryLimit > 0 {
				mem += " / " + container.FormatSize(p.MemoryLimit)
			}
		}
		state := p.State
		if p.Detail != "" {
			state += " (" + p.Detail + ")"
		}
		last := p.LastExit
		if last == "" {
			last = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Name, state, pid, up, p.Restarts, mem, last)
	}
	w.Flush()
	return exitOK
}

func logsMain(args []string) int {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	follow := fs.Bool("f", false, "follow: keep printing new lines")
	n := fs.Int("n", 0, "only the last N lines (default all the ring holds)")
	asJSON := fs.Bool("json", false, "print JSON lines for scripts")
	stamps := fs.Bool("t", false, "prefix each line with its time")
	socket := fs.String("socket", boot.SocketPath(), "berth's control socket")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: berth logs [-f] [-n N] [-t] [--json] NAME")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return exitUsage
	}
	enc := json.NewEncoder(os.Stdout)
	err := boot.Call(*socket, boot.Request{Verb: "logs", Name: fs.Arg(0), Lines: *n, Follow: *follow}, func(r boot.Response) error {
		for _, l := range r.Lines {
			switch {
			case *asJSON:
				if err := enc.Encode(l); err != nil {
					return err
				}
			case *stamps:
				fmt.Printf("%s %s\n", l.Time.Format(time.RFC3339Nano), l.Text)
			default:
				fmt.Println(l.Text)
			}
		}
		return nil
	})
	if err != nil {
		errorf("%v", err)
		return exitFailure
	}
	return exitOK
}

func statusMain(args []string) int {
	fs, asJSON, socket, ok := ctlFlags("status", "status [--json]", args)
	if !ok || fs.NArg() != 0 {
		return exitUsage
	}
	resp, code := call(*socket, boot.Request{Verb: "status"})
	if code != exitOK || resp.Status == nil {
		return exitFailure
	}
	st := resp.Status
	if *asJSON {
		return printJSON(st)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "berth\t%s (PID 1: %v, RSS %s)\n", st.Version, st.PID1, container.FormatSize(st.RSS))
	fmt.Fprintf(w, "board\t%s (profile %s)\n", st.Board.Model, st.Board.Profile.Name)
	fmt.Fprintf(w, "kernel\t%s\n", st.Kernel)
	fmt.Fprintf(w, "uptime\t%s\n", (time.Duration(st.UptimeSec) * time.Second).String())
	fmt.Fprintf(w, "cgroups\t%s\n", st.Cgroups)
	fmt.Fprintf(w, "watchdog\t%s\n", st.Watchdog)
	fmt.Fprintf(w, "config\t%s\n", st.Config)
	fmt.Fprintf(w, "containers\t%d running of %d\n", st.Running, st.Containers)
	for _, im := range st.Images {
		fmt.Fprintf(w, "image\t%s: %s\n", im.Container, im.Path)
	}
	w.Flush()
	return exitOK
}

func boardMain(args []string) int {
	fs := flag.NewFlagSet("board", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return exitUsage
	}
	b := board.Detect()
	mem := board.HasMemoryCgroup()
	if *asJSON {
		return printJSON(struct {
			board.Board
			MemoryCgroup bool `json:"memory_cgroup"`
		}{b, mem})
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "model\t%s\n", b.Model)
	fmt.Fprintf(w, "from\t%s\n", b.Source)
	if len(b.Compatible) > 0 {
		fmt.Fprintf(w, "compatible\t%s\n", strings.Join(b.Compatible, ", "))
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
	return exitOK
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
func debugMain(args []string) int {
	fs, _, socket, ok := ctlFlags("debug", "debug hang | debug signal NAME", args)
	if !ok || fs.NArg() < 1 {
		fs.Usage()
		return exitUsage
	}
	req := boot.Request{Verb: "debug-" + fs.Arg(0)}
	if fs.NArg() > 1 {
		req.Name = fs.Arg(1)
	}
	resp, code := call(*socket, req)
	if code == exitOK {
		fmt.Println(resp.Message)
	}
	return code
}
