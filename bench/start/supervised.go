package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// supervisedBench times supervised starts: berth boot on this host (the
// PID 1 sequence minus the machine-wide steps) runs a chain of perBoot
// oneshot containers running /bin/true, each after the one before, so
// that each start follows a decision of the supervisor, as a restart
// does. With BERTH_TRACE set, the supervisor stamps "decide" when it
// starts a container, and the container's init stamps "exec" just before
// it execs the workload (on the container's stderr, which berth boot logs
// on its console): a supervised start is the time between the two. crun
// and the wrapper run alternating with the boots, perBoot times after
// each, so the ratio compares within one run.
func supervisedBench(berth, rootfs, bundle, work string, rounds, perBoot int) error {
	img := filepath.Join(work, "bench.tar.zst")
	if _, err := timeCmd([]string{berth, "image", "pack", rootfs, "-o", img}); err != nil {
		return err
	}
	config := filepath.Join(work, "boot.toml")
	if err := os.WriteFile(config, []byte(chainConfig(img, perBoot)), 0o644); err != nil {
		return err
	}
	state := filepath.Join(work, "state")
	sup := newPhases()
	var starts, wraps, cruns []time.Duration
	for r := -1; r < rounds; r++ {
		out, err := exec.Command("env", "BERTH_TRACE=1", berth, "boot", "--config", config,
			"--state", state, "--socket", filepath.Join(work, "ctl.sock")).CombinedOutput()
		if err != nil {
			return fmt.Errorf("berth boot: %v: %s", err, out)
		}
		got, err := sup.addSupervised(string(out), r >= 0)
		if err != nil {
			return err
		}
		if got != perBoot {
			return fmt.Errorf("berth boot: %d of %d supervised starts traced:\n%s", got, perBoot, out)
		}
		for i := 0; i < perBoot; i++ {
			w, err := timeCmd(append(append([]string{}, wrapper...), "/bin/true"))
			if err != nil {
				return err
			}
			c, err := timeCmd(append(append([]string{}, wrapper...), "crun", "run", "-b", bundle, fmt.Sprintf("bench-sup-%d", i)))
			if err != nil {
				return fmt.Errorf("crun: %w", err)
			}
			if r >= 0 {
				wraps, cruns = append(wraps, w), append(cruns, c)
			}
		}
	}
	starts = sup.all["supervised"]
	crunNet := median(cruns) - median(wraps)
	fmt.Printf("supervised start (berth boot on this host: the supervisor's decision -> the workload's exec), %d boots of %d chained oneshot containers:\n", rounds, perBoot)
	fmt.Printf("  %-28s %10s %16s %9s\n", "", "median", "p25-p75", "vs crun")
	fmt.Printf("  %-28s %10s %16s %9s\n", "berth supervised start", ms(median(starts)), ms(pct(starts, 25))+"-"+ms(pct(starts, 75)),
		fmt.Sprintf("%.2fx", float64(median(starts))/float64(crunNet)))
	fmt.Printf("  %-28s %10s %16s %9s\n", "crun net (run to exit)", ms(crunNet), "", "1.00x")
	fmt.Println("supervised start breakdown (median time since the previous step):")
	var total time.Duration
	for _, ph := range sup.order {
		if ph == "supervised" {
			continue
		}
		total += sup.median(ph)
		fmt.Printf("  %-28s %8s\n", ph, ms(sup.median(ph)))
	}
	fmt.Printf("  %-28s %8s\n\n", "sum", ms(total))
	return nil
}

// chainConfig is a berth.toml of n oneshot containers running /bin/true
// from img with berth run's bench limits, each after the one before.
func chainConfig(img string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "[[container]]\nname = \"bench-%d\"\nimage = %q\ncommand = [\"/bin/true\"]\noneshot = true\n", i, img)
		if i > 0 {
			fmt.Fprintf(&b, "after = [\"bench-%d\"]\n", i-1)
		}
		b.WriteString("[container.limits]\nmemory = \"64M\"\npids = 64\n\n")
	}
	return b.String()
}

// addSupervised records, from berth boot's output, each supervised start:
// the steps from a "decide" stamp to the next "exec" stamp and their sum
// (as step "supervised"), when keep is set. It returns how many starts it
// found.
func (p *phases) addSupervised(out string, keep bool) (int, error) {
	type mark struct {
		phase string
		ns    int64
	}
	var marks []mark
	for _, line := range strings.Split(out, "\n") {
		i := strings.Index(line, "berth-trace ")
		if i < 0 {
			continue
		}
		var m mark
		if _, err := fmt.Sscanf(line[i:], "berth-trace %s %d", &m.phase, &m.ns); err == nil {
			marks = append(marks, m)
		}
	}
	sort.Slice(marks, func(i, j int) bool { return marks[i].ns < marks[j].ns })
	n, decided := 0, -1
	for i, m := range marks {
		switch {
		case m.phase == "decide":
			decided = i
		case decided >= 0:
			if keep {
				p.record(m.phase, time.Duration(m.ns-marks[i-1].ns))
			}
			if m.phase == "exec" {
				if keep {
					p.record("supervised", time.Duration(m.ns-marks[decided].ns))
				}
				n, decided = n+1, -1
			}
		}
	}
	return n, nil
}
