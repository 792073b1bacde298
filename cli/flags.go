package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// One convention for every verb: flags may come before, between and after
// the positional arguments (up to "--"); -h prints the usage on stdout and
// exits 0; a bad flag or a wrong number of arguments is one line on stderr
// with a hint, and exit status 2.

// command is one verb's flags and usage.
type command struct {
	c    *ctx
	name string // "logs", "image unpack"
	// synopsis is the usage line after "berth NAME ", e.g. "[-f] NAME".
	synopsis string
	// about is printed under the usage line by -h.
	about string
	fs    *flag.FlagSet
}

func (c *ctx) command(name, synopsis, about string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by parse, in one line
	return &command{c: c, name: name, synopsis: synopsis, about: about, fs: fs}
}

// usage prints the verb's usage and flags to w.
func (cmd *command) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: berth %s %s\n", cmd.name, cmd.synopsis)
	if cmd.about != "" {
		fmt.Fprintf(w, "\n%s\n", cmd.about)
	}
	n := 0
	cmd.fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintln(w, "\nflags:")
		cmd.fs.SetOutput(w)
		cmd.fs.PrintDefaults()
		cmd.fs.SetOutput(io.Discard)
	}
}

// fail reports a usage error in one line plus a hint and returns exit
// status 2.
func (cmd *command) fail(format string, args ...any) int {
	fmt.Fprintf(cmd.c.stderr, "berth %s: %s\nrun 'berth %s -h' for usage\n", cmd.name, fmt.Sprintf(format, args...), cmd.name)
	return exitUsage
}

// parse parses args, flags anywhere, and checks that between min and max
// positionals remain (max < 0: no limit). It returns them, or an exit
// status ≥ 0 when the verb must stop (-h: 0; an error: 2).
func (cmd *command) parse(args []string, min, max int) ([]string, int) {
	pos, rest, status := cmd.parseUntil(args, -1)
	if status >= 0 {
		return nil, status
	}
	pos = append(pos, rest...)
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		return nil, cmd.fail("%s", argCountError(pos, min, max))
	}
	return pos, -1
}

// parseUntil parses flags anywhere until stop positionals have been seen
// (stop < 0: all) or "--"; it returns those positionals and the arguments
// left unparsed after them (everything after "--", or after the stop-th
// positional).
func (cmd *command) parseUntil(args []string, stop int) (pos, rest []string, status int) {
	for {
		err := cmd.fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			cmd.usage(cmd.c.stdout)
			return nil, nil, exitOK
		}
		if err != nil {
			return nil, nil, cmd.fail("%s", flagError(err, args))
		}
		left := cmd.fs.Args()
		consumed := args[:len(args)-len(left)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return pos, left, -1
		}
		if len(left) == 0 {
			return pos, nil, -1
		}
		pos = append(pos, left[0])
		args = left[1:]
		if stop >= 0 && len(pos) == stop {
			return pos, args, -1
		}
	}
}

// flagError rewords the flag package's errors: "flag provided but not
// defined: -x" becomes "unknown flag -x", or "unknown flag --x" when
// args (what was parsed) spelt it so.
func flagError(err error, args []string) string {
	msg := err.Error()
	f, ok := strings.CutPrefix(msg, "flag provided but not defined: -")
	if !ok {
		return msg
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(a, "=")
		if name == "-"+f || name == "--"+f {
			return "unknown flag " + name // the first spelling of it, as typed
		}
	}
	return "unknown flag -" + f
}

func argCountError(pos []string, min, max int) string {
	switch {
	case len(pos) < min && min == 1:
		return "missing argument"
	case len(pos) < min:
		return fmt.Sprintf("want %d arguments, got %d", min, len(pos))
	case max == 0:
		return fmt.Sprintf("unexpected argument %q", pos[0])
	}
	return fmt.Sprintf("unexpected argument %q", pos[max])
}

// listFlag is a repeatable flag; with split, commas also separate values.
type listFlag struct {
	vals  []string
	split bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }
func (l *listFlag) Set(v string) error {
	if l.split {
		l.vals = append(l.vals, strings.Split(v, ",")...)
	} else {
		l.vals = append(l.vals, v)
	}
	return nil
}
