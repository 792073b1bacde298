package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"berth/board"
)

// profileInfo is one profile as berth board --list --json shows it.
type profileInfo struct {
	board.Profile
	Match string `json:"match"`
}

// listProfiles is `berth board --list`: every profile, in the order berth
// tries them, with its match rule, console, watchdog, modules, NIC
// drivers and notes.
func (c *ctx) listProfiles(asJSON bool) int {
	if asJSON {
		var out []profileInfo
		for _, p := range board.Profiles {
			out = append(out, profileInfo{p, p.Rule()})
		}
		return c.printJSON(out)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROFILE\tMATCH\tCONSOLE\tWATCHDOG\tMODULES\tNIC DRIVERS\tDISK DRIVERS\tNOTES")
	for _, p := range board.Profiles {
		notes := p.Notes
		if notes == "" {
			notes = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Rule(), p.Console, orNone(p.Watchdog),
			orNone(strings.Join(p.Modules, " ")), orNone(strings.Join(p.NICs, " ")), orNone(strings.Join(p.Disks, " ")), notes)
	}
	w.Flush()
	return exitOK
}
