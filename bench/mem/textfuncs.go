package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path"
	"regexp"
	"sort"
	"strconv"

	"berth/bench/internal/pcln"
)

// coverLine is a line of go tool covdata func: file:line: name percent.
var coverLine = regexp.MustCompile(`^(.+):(\d+):\s+(\S+)\s+([\d.]+)%$`)

// coveredFuncs lists, from the counters in dir, the functions that ran
// (by funcKey) and the packages that were instrumented.
func coveredFuncs(dir string) (ran map[string]bool, measured map[string]bool, err error) {
	out, err := exec.Command("go", "tool", "covdata", "func", "-i="+dir).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("go tool covdata func: %w", err)
	}
	ran, measured = map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := coverLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		line, _ := strconv.Atoi(m[2])
		measured[pkgOfFile(m[1])] = true
		if pct, _ := strconv.ParseFloat(m[4], 64); pct > 0 {
			ran[funcKey(m[1], line)] = true
		}
	}
	if len(measured) == 0 {
		return nil, nil, fmt.Errorf("no coverage counters in %s", dir)
	}
	return ran, measured, sc.Err()
}

// versionInPath is a module version in a file name of the pclntab
// (github.com/x/y@v1.2.3/z.go), which the coverage list leaves out.
var versionInPath = regexp.MustCompile(`@[^/]+`)

// funcKey names a function by its file, without module version, and the
// line of its declaration.
func funcKey(file string, line int) string {
	return versionInPath.ReplaceAllString(file, "") + ":" + strconv.Itoa(line)
}

// pkgOfFile is the import path of a file's package.
func pkgOfFile(file string) string {
	return path.Dir(versionInPath.ReplaceAllString(file, ""))
}

// readFuncs lists the functions of the binary at file from its pclntab,
// with the file and line of each one's entry.
func readFuncs(file string) ([]textFunc, error) {
	b, err := pcln.Open(file)
	if err != nil {
		return nil, err
	}
	funcs := make([]textFunc, 0, len(b.Table.Funcs))
	for _, f := range b.Table.Funcs {
		name, line, _ := b.Table.PCToLine(f.Entry)
		funcs = append(funcs, textFunc{name: f.Name, file: name, line: line, start: f.Entry, end: f.End, pkg: pkgOfFile(name)})
	}
	return funcs, nil
}

// closureSuffix is what the compiler appends to a function's name for a
// closure, go statement or defer within it.
var closureSuffix = regexp.MustCompile(`\.(func\d+|gowrap\d+|deferwrap\d+|\d+)$`)

// inheritClosures marks each closure as its enclosing function: the
// coverage list counts a closure's statements as the enclosing
// function's.
func inheritClosures(funcs []textFunc) {
	byName := map[string]*textFunc{}
	for i := range funcs {
		byName[funcs[i].name] = &funcs[i]
	}
	for i := range funcs {
		f := &funcs[i]
		parent := f.name
		for closureSuffix.MatchString(parent) {
			parent = closureSuffix.ReplaceAllString(parent, "")
			if p, ok := byName[parent]; ok && !closureSuffix.MatchString(parent) {
				f.ran = f.ran || p.ran
				break
			}
		}
	}
}

// textRows is how many packages the report lists, those with the most
// code mapped first.
const textRows = 25

// textRow is one package's line of the report, in bytes.
type textRow struct {
	name              string
	size, ran, mapped uint64
}

// reportText prints, by package, berth's code, the part that ran and the
// part mapped, and the 64 KiB windows the code that ran lies in.
func reportText(funcs []textFunc, mapped map[uint64]bool) {
	rows := map[string]*textRow{}
	var total textRow
	ranWin, mappedWin := map[uint64]bool{}, map[uint64]bool{}
	var lo, hi uint64 = ^uint64(0), 0
	for _, f := range funcs {
		name := f.pkg
		if !f.measured {
			name = "(no counters: counted as run)"
		}
		r := rows[name]
		if r == nil {
			r = &textRow{name: name}
			rows[name] = r
		}
		lo, hi = min(lo, f.start), max(hi, f.end)
		size := f.end - f.start
		var inPages uint64
		for p := f.start &^ 4095; p < f.end; p += 4096 {
			if mapped[p] {
				inPages += min(f.end, p+4096) - max(f.start, p)
			}
		}
		r.size, r.mapped = r.size+size, r.mapped+inPages
		total.size, total.mapped = total.size+size, total.mapped+inPages
		if f.ran || !f.measured {
			// What cannot be measured counts as run: the figure is a bound.
			r.ran += size
			total.ran += size
			for w := f.start &^ (window - 1); w < f.end; w += window {
				ranWin[w] = true
			}
		}
	}
	var textPages int
	for p := range mapped {
		if p >= lo&^4095 && p < hi {
			textPages++
			mappedWin[p&^(window-1)] = true
		}
	}
	list := make([]*textRow, 0, len(rows))
	for _, r := range rows {
		list = append(list, r)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].mapped > list[j].mapped })
	fmt.Printf("berth's code (its functions in the pclntab), idle berth boot on this host, KiB:\n")
	fmt.Printf("  %-46s %8s %8s %8s\n", "package", "code", "ran", "mapped")
	for i, r := range list {
		if i == textRows {
			break
		}
		fmt.Printf("  %-46s %8d %8d %8d\n", r.name, r.size>>10, r.ran>>10, r.mapped>>10)
	}
	fmt.Printf("  %-46s %8d %8d %8d\n", fmt.Sprintf("all %d packages", len(list)), total.size>>10, total.ran>>10, total.mapped>>10)
	fmt.Printf("  text pages mapped: %d KiB of %d KiB\n", textPages*4, (hi-lo&^4095)>>10)
	fmt.Printf("  64 KiB windows: %d hold code that ran (or could not be measured), %d are mapped, of %d\n",
		len(ranWin), len(mappedWin), (hi-lo&^(window-1)+window-1)/window)
	fmt.Printf("  the code that ran, packed together, would map about %d KiB\n", (total.ran+window-1)/window*window>>10)
	allMapped := uint64(len(mapped)) * 4
	fmt.Printf("  all of the binary mapped (text, read-only data, data): %d KiB\n", allMapped)
}
