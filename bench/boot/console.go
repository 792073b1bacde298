package main

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"berth/bench/internal/results"
)

// The console of one boot, as berth stamps its lines (CLOCK_BOOTTIME):
// when the init started, when the first container wrote its first line,
// and the milestones of berth's boot between the two.

// console is what one boot's console tells.
type console struct {
	initStart, firstOutput float64
	// at holds each milestone's time after the init's start, in ms.
	at map[string]float64
}

// A stamp may follow QEMU firmware escape codes on the same line.
var (
	stampRE = regexp.MustCompile(`(?m)\[\s*([0-9.]+)\] ([^\n]*)$`)
	phaseRE = regexp.MustCompile(`^berth: phase (\d+/\d+ [^:]+):`)
)

// The milestones besides the phases: berth logs the phase lines, each
// image it has readied (the first one matters), the end of the image
// goroutine, and each container's start.
const (
	firstImage  = "first image ready"
	allImages   = "all images ready"
	firstStart  = "first container started"
	firstOutput = "first container output"
)

func parse(out string) console {
	c := console{at: map[string]float64{}}
	for _, m := range stampRE.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		line := strings.TrimSuffix(m[2], "\r") // a serial console ends its lines with CR LF
		switch {
		case c.initStart == 0 && (isBerthStart(line) || strings.HasPrefix(line, "hello: ") || strings.HasPrefix(line, floorStart)):
			c.initStart = v
		case c.firstOutput == 0 && isContainerOutput(line):
			c.firstOutput = v
		}
		if name := milestoneOf(line); name != "" && c.initStart != 0 {
			if _, ok := c.at[name]; !ok {
				c.at[name] = (v - c.initStart) * 1000
			}
		}
	}
	return c
}

// milestoneOf is the milestone a console line, its stamp taken off,
// marks, or "". Only a milestone's first line counts.
func milestoneOf(line string) string {
	switch {
	case isContainerOutput(line):
		return firstOutput
	case strings.HasPrefix(line, floorStep):
		return "floor: " + strings.TrimPrefix(line, floorStep)
	case phaseRE.MatchString(line):
		return "phase " + phaseRE.FindStringSubmatch(line)[1]
	case strings.HasPrefix(line, "berth: image "):
		return firstImage
	case strings.HasPrefix(line, "berth: images: all ready"):
		return allImages
	case strings.HasPrefix(line, "berth: container ") && strings.Contains(line, " started: pid "):
		return firstStart
	}
	return ""
}

// The floor's lines (bench/boot/floor): its start and each step done.
const (
	floorStart = "floor: started"
	floorStep  = "floor: step "
)

// isBerthStart reports whether a console line, its stamp taken off, is
// berth's first: the init's start.
func isBerthStart(line string) bool { return strings.HasPrefix(line, "berth: berth ") }

// isContainerOutput reports whether a console line, its stamp taken off,
// is a container's output: "NAME | TEXT".
func isContainerOutput(line string) bool {
	return strings.Contains(line, " | ") && !strings.HasPrefix(line, "berth:")
}

// milestone is one milestone's median over boots.
type milestone struct {
	name string
	at   float64 // ms after berth's start
}

// breakdown orders the milestones of several boots of one berth by their
// median time after berth's start. Consecutive medians give the steps,
// which add up to the median of the last.
func breakdown(boots []console) []milestone {
	all := map[string][]float64{}
	for _, c := range boots {
		for name, v := range c.at {
			all[name] = append(all[name], v)
		}
	}
	var ms []milestone
	for name, vs := range all {
		if len(vs) == len(boots) { // a milestone every boot passed
			ms = append(ms, milestone{name, medianOf(vs)})
		}
	}
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].at != ms[j].at {
			return ms[i].at < ms[j].at
		}
		return ms[i].name < ms[j].name
	})
	return ms
}

// printBreakdown prints one init's boot (berth's or the floor's) step by
// step, from its first line, and records each step
// as a figure named prefix + the milestone.
func printBreakdown(title string, ms []milestone, rec *results.Set, prefix string) {
	fmt.Printf("  %s, ms after its init's first line (medians; step: since the line above):\n", title)
	prev := 0.0
	for _, m := range ms {
		fmt.Printf("    %-34s %7.0f %7.0f\n", m.name, m.at, m.at-prev)
		rec.Add(prefix+"step: "+m.name, m.at-prev, "ms")
		prev = m.at
	}
}

func medianOf(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// median is the median of f over boots.
func median(f func(console) float64, boots []console) float64 {
	v := make([]float64, len(boots))
	for i, c := range boots {
		v[i] = f(c)
	}
	return medianOf(v)
}

// lastLines is the last n lines of s, indented.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\r\n"), "\n")
	lines = lines[max(0, len(lines)-n):]
	for i, l := range lines {
		lines[i] = "    | " + strings.TrimRight(l, "\r")
	}
	return strings.Join(lines, "\n")
}
