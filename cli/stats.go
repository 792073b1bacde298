package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"berth/boot"
	"berth/container"
)

const statsAbout = `Shows the resource use of the running containers, or of the NAMEs: CPU in
percent of one CPU over the last interval, memory (use / limit), its
peak, OOM kills, processes (count / limit) and block I/O (read / write),
from their cgroups. berth samples twice, INTERVAL apart; -f refreshes
every INTERVAL, like top, clearing the screen on a terminal (with
--json: one JSON array per line). n/a: the kernel does not report that
figure (memory.peak needs Linux 5.19 on cgroup v2); -: the container does
not run.`

// minStatsInterval is the shortest -i: berth computes a CPU figure over
// 200 ms at least.
const minStatsInterval = 200 * time.Millisecond

func statsMain(c *ctx, args []string) int {
	cmd := c.ctlCommand("stats", "[-f] [-i INTERVAL] [--json] [NAME...]", statsAbout)
	follow := cmd.fs.Bool("f", false, "follow: refresh every INTERVAL")
	interval := cmd.fs.Duration("i", time.Second, "the `INTERVAL` between samples (at least 200ms)")
	cmd.fs.DurationVar(interval, "interval", time.Second, "same as -i")
	names, status := cmd.parse(args, 0, -1)
	if status >= 0 {
		return status
	}
	if *interval < minStatsInterval {
		return cmd.fail("interval %s: want at least %s", *interval, minStatsInterval)
	}
	clear := *follow && !*cmd.asJSON && isTerminal(c.stdout)
	// The first answer only gives berth a sample to compare the next
	// one with: every figure printed is over the last INTERVAL.
	for i := 0; ; i++ {
		resp, code := cmd.call(boot.Request{Verb: "stats", Names: names})
		if code != exitOK {
			return code
		}
		if i > 0 {
			if err := c.printStats(resp.Stats, *cmd.asJSON, *follow, clear, i); err != nil {
				return exitFailure
			}
			if !*follow {
				return exitOK
			}
		}
		time.Sleep(*interval)
	}
}

// printStats prints one refresh of berth stats: the table, or JSON
// (indented, or one line per refresh with -f). The n-th table of -f
// clears the terminal first, or follows a blank line.
func (c *ctx) printStats(rows []boot.ContainerStats, asJSON, follow, clear bool, n int) error {
	if rows == nil {
		rows = []boot.ContainerStats{}
	}
	if asJSON {
		enc := json.NewEncoder(c.stdout)
		if !follow {
			enc.SetIndent("", "  ")
		}
		return enc.Encode(rows)
	}
	switch {
	case clear:
		fmt.Fprint(c.stdout, "\x1b[H\x1b[2J")
	case n > 1:
		fmt.Fprintln(c.stdout)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tCPU%\tMEM\tPEAK\tOOM\tPIDS\tBLOCK I/O")
	for _, r := range rows {
		st := r.Stats
		if st == nil {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t-\t-\n", r.Name)
			continue
		}
		if st.Error != "" {
			c.errorf("stats of %s: %s", r.Name, st.Error)
		}
		cpu := "n/a"
		if st.CPUPercent != nil {
			cpu = fmt.Sprintf("%.1f%%", *st.CPUPercent)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, cpu, sizeOf(st.Memory, st.MemoryLimit), sizeOf(st.MemoryPeak, nil),
			countOf(st.OOMKills, nil), countOf(st.Pids, st.PidsLimit), ioOf(st.IORead, st.IOWrite))
	}
	return w.Flush()
}

// sizeOf renders a size and its limit: "12 MiB / 32 MiB", "12 MiB", "n/a".
func sizeOf(v, limit *int64) string {
	if v == nil {
		return "n/a"
	}
	s := container.FormatSize(*v)
	if limit != nil {
		s += " / " + container.FormatSize(*limit)
	}
	return s
}

// countOf renders a count and its limit: "3 / 16", "3", "n/a".
func countOf(v, limit *int64) string {
	if v == nil {
		return "n/a"
	}
	if limit != nil {
		return fmt.Sprintf("%d / %d", *v, *limit)
	}
	return fmt.Sprint(*v)
}

// ioOf renders block I/O: "8 MiB / 1.5 MiB" (read / write), or "n/a".
func ioOf(read, write *int64) string {
	if read == nil || write == nil {
		return "n/a"
	}
	return container.FormatSize(*read) + " / " + container.FormatSize(*write)
}
