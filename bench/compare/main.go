// Command compare sets two results files of make bench side by side: go
// run ./bench/compare OLD.json NEW.json prints each figure with its old
// and new value and the change in percent, benchmark by benchmark, and
// the figures only one of them has. -match keeps the figures whose name
// holds a string.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"berth/bench/internal/results"
)

func main() {
	match := flag.String("match", "", "only figures whose benchmark or name holds this `string` (case-insensitive)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./bench/compare [-match STRING] OLD.json NEW.json")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	old, err := results.Read(flag.Arg(0))
	if err == nil {
		var cur *results.File
		if cur, err = results.Read(flag.Arg(1)); err == nil {
			fmt.Printf("old: %s (%s)\nnew: %s (%s)\n\n", flag.Arg(0), describe(old), flag.Arg(1), describe(cur))
			compare(os.Stdout, old, cur, *match)
			return
		}
	}
	fmt.Fprintln(os.Stderr, "compare:", err)
	os.Exit(1)
}

// describe says where and when a file's figures were taken.
func describe(f *results.File) string {
	s := f.Created
	if f.Commit != "" {
		s = f.Commit + ", " + s
	}
	for _, r := range f.Runs {
		s += fmt.Sprintf("; %s load %s", r.Bench, r.LoadAvg)
	}
	return s
}

// row is one line of the table.
type row struct{ name, old, new, change string }

// compare writes the table: the new file's figures in its order, each
// benchmark's figures that only the old file has after them.
func compare(w io.Writer, old, cur *results.File, match string) {
	match = strings.ToLower(match)
	keep := func(f results.Figure) bool {
		return match == "" || strings.Contains(strings.ToLower(f.Bench+" / "+f.Name), match)
	}
	olds := map[string]results.Figure{}
	for _, f := range old.Figures {
		olds[f.Bench+"\x00"+f.Name] = f
	}
	seen := map[string]bool{}
	rows := []row{{"figure", "old", "new", "change"}}
	var gone []row
	for _, f := range cur.Figures {
		k := f.Bench + "\x00" + f.Name
		seen[k] = true
		if !keep(f) {
			continue
		}
		r := row{name: f.Bench + " / " + f.Name, old: "-", new: value(f), change: "new"}
		if o, ok := olds[k]; ok {
			r.old, r.change = value(o), change(o, f)
		}
		rows = append(rows, r)
	}
	for _, f := range old.Figures {
		if !seen[f.Bench+"\x00"+f.Name] && keep(f) {
			gone = append(gone, row{name: f.Bench + " / " + f.Name, old: value(f), new: "-", change: "gone"})
		}
	}
	rows = append(rows, gone...)
	width := 0
	for _, r := range rows {
		width = max(width, len(r.name))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s %14s %14s %9s\n", width, r.name, r.old, r.new, r.change)
	}
}

// value is a figure with four significant digits, or as an integer from
// 1000 on, and its unit.
func value(f results.Figure) string {
	v := strconv.FormatFloat(f.Value, 'g', 4, 64)
	if abs(f.Value) >= 1000 {
		v = strconv.FormatFloat(f.Value, 'f', 0, 64)
	}
	if f.Unit != "" {
		v += " " + f.Unit
	}
	return v
}

// change is new against old in percent.
func change(o, n results.Figure) string {
	switch {
	case o.Unit != n.Unit:
		return "unit?"
	case o.Value == n.Value:
		return "0%"
	case o.Value == 0:
		return "n/a"
	}
	return fmt.Sprintf("%+.1f%%", (n.Value-o.Value)/abs(o.Value)*100)
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}
