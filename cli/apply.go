package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"time"

	"berth/boot"
)

// applyMain is `berth apply FILE`.
func applyMain(c *ctx, args []string) int {
	cmd := c.ctlCommand("apply", "[--json] [--progress] FILE",
		"Makes FILE (a path berth can read) the next generation: its images are verified\n"+
			"and unpacked first, nothing running changes until then; the changed containers\n"+
			"are then switched and must stay up ([update] grace_period) or the device goes\n"+
			"back to the committed generation by itself. Exits 0 once the generation is\n"+
			"committed, 1 with the reason when it was refused or rolled back. Each step\n"+
			"(an image readied, the switch, a container found ready) is a line on stderr\n"+
			"when it is a terminal, or with --progress.")
	lines := cmd.fs.Bool("progress", false, "print a line per step on stderr even when it is not a terminal")
	pos, status := cmd.parse(args, 1, 1)
	if status >= 0 {
		return status
	}
	path, err := filepath.Abs(pos[0])
	if err != nil {
		c.errorf("%v", err)
		return exitFailure
	}
	cmd.steps = c.progress(*lines)
	resp, code := cmd.call(boot.Request{Verb: "apply", Path: path})
	if code != exitOK {
		return code
	}
	return cmd.message(resp)
}

// rollbackMain is `berth rollback`.
func rollbackMain(c *ctx, args []string) int {
	return ctlMain(c, "rollback", "Goes back to the previous committed generation: its config and its images.", args)
}

// printGeneration writes berth status's generation line.
func printGeneration(w io.Writer, g *boot.GenerationInfo) {
	if g == nil {
		return
	}
	if g.Error != "" {
		fmt.Fprintf(w, "generation\t%s\n", cell(g.Error))
		return
	}
	line := fmt.Sprintf("%d %s", g.Current, g.State)
	if g.State == "trying" {
		line += fmt.Sprintf(" (boot %d; committed: %d)", g.Boots, g.Committed)
	}
	if g.Previous != 0 {
		line += fmt.Sprintf(", previous %d", g.Previous)
	}
	if g.Source != "" {
		line += " from " + g.Source
	}
	fmt.Fprintf(w, "generation\t%s\n", line)
	if rb := g.LastRollback; rb != nil {
		fmt.Fprintf(w, "rollback\t%d to %d at %s: %s\n", rb.From, rb.To, rb.Time.Format(time.RFC3339), cell(rb.Reason))
	}
	if g.Unrecorded != "" {
		fmt.Fprintf(w, "record\tnot written, the next boot goes by the one on disk: %s\n", cell(g.Unrecorded))
	}
}
