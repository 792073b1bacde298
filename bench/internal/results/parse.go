package results

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Parse turns the text a benchmark printed into figures, one per number,
// each named by where it stands, so that two runs of the same benchmark
// name their figures alike:
//
//   - an unindented line, unless it is a note in parentheses, is a heading
//     for the lines below it; its name is its text up to the first ':' or
//     number ("== minbase: 6768 entries" is minbase);
//   - a line of three or more columns, two spaces apart, without numbers
//     is a table's header: in the rows below it (up to a blank line or a
//     line that is no row) a number is named by the row's first column
//     and the header of the column it ends under (right-aligned);
//   - elsewhere a number is named by the line's label — its text up to
//     the first ':' or number — and the words before it back to a
//     separator (",;:(+|"), or else the words after it: in "kernel start
//     -> init start: hello 3429 ms, berth 3912 ms", hello and berth.
//
// A number is a word of its own ("p75", "eth0" and "zstd -3" hold none),
// a sign only with a unit, and takes a unit written against it or after
// one space: 4.21ms, 1.14x, 3912 ms, 30 MiB, +1.5%. Names are
// "heading / label / words"; a repeated name gets " #2", " #3".
func Parse(text string) []Figure {
	p := parser{seen: map[string]int{}}
	for _, line := range strings.Split(text, "\n") {
		p.line(strings.TrimRight(line, " \t\r"))
	}
	return p.figs
}

type parser struct {
	heading string
	header  []column // the current table's header, nil outside one
	indent  int      // the header's indentation
	figs    []Figure
	seen    map[string]int
}

// column is a table header's cell: its text and where it ends.
type column struct {
	name string
	end  int
}

func (p *parser) line(s string) {
	if strings.TrimSpace(s) == "" {
		p.header = nil
		return
	}
	nums := numbers(s)
	indent := len(s) - len(strings.TrimLeft(s, " "))
	if p.header != nil && len(nums) > 0 && len(cells(s)) >= 2 && indent == p.indent {
		p.row(s, nums)
		return
	}
	p.header = nil
	if cs := cells(s); len(cs) >= 3 && len(nums) == 0 {
		p.header, p.indent = cs, indent
		return
	}
	label, prevEnd := labelOf(s, nums), labelEnd(s, nums)
	switch {
	case strings.HasPrefix(s, "("): // a note: named by its words
		label, prevEnd = "", 0
	case indent == 0:
		p.heading = strings.TrimLeft(label, "= ")
		label = ""
	}
	for i, n := range nums {
		words := lastWords(s[prevEnd:n.start])
		if words == "" {
			next := len(s)
			if i+1 < len(nums) {
				next = nums[i+1].start
			}
			words = firstWords(s[n.end:next])
		}
		p.add(n, label, words)
		prevEnd = n.end
	}
}

// row names each number of a table row by the row's label and the
// column it ends under.
func (p *parser) row(s string, nums []number) {
	label := strings.TrimSpace(s[:nums[0].start])
	col := p.header[len(p.header)-1]
	for _, n := range nums {
		if !n.inRange { // a range's second number stays in its cell
			col = p.header[len(p.header)-1]
			for j := 1; j < len(p.header); j++ {
				if n.end <= p.header[j].end {
					col = p.header[j]
					break
				}
			}
		}
		p.add(n, label, col.name)
	}
}

func (p *parser) add(n number, parts ...string) {
	name := p.heading
	for _, part := range parts {
		if part == "" {
			continue
		}
		if name != "" {
			name += " / "
		}
		name += part
	}
	p.seen[name]++
	if k := p.seen[name]; k > 1 {
		name += fmt.Sprintf(" #%d", k)
	}
	p.figs = append(p.figs, Figure{Name: name, Value: n.value, Unit: n.unit})
}

// number is a number found in a line: its value and unit, and where its
// text (unit included) starts and ends.
type number struct {
	value      float64
	unit       string
	start, end int
	inRange    bool // the second number of a range: 4.0ms-4.4ms
}

var (
	numberRE = regexp.MustCompile(`[-+]?[0-9]+(?:\.[0-9]+)?`)
	unitRE   = regexp.MustCompile(`^ ?(ms|µs|us|ns|s|x|%|KiB|MiB|GiB|kB|KB|MB|GB|bytes|B|entries)`)
	cellRE   = regexp.MustCompile(`\S+(?: \S+)*`)
)

// numbers finds the numbers of a line (see Parse).
func numbers(s string) []number {
	var out []number
	for _, m := range numberRE.FindAllStringIndex(s, -1) {
		start, end := m[0], m[1]
		signed := s[start] == '-' || s[start] == '+'
		before := byte(' ')
		if start > 0 {
			before = s[start-1]
		}
		// A range's second number follows the first one's unit: 4.0ms-4.4ms.
		rangeEnd := len(out) > 0 && out[len(out)-1].end == start && s[start] == '-'
		if rangeEnd {
			start, signed = start+1, false
		} else if !strings.ContainsRune(" (=,;:[|", rune(before)) {
			continue
		}
		n := number{start: start, end: end, inRange: rangeEnd}
		n.value, _ = strconv.ParseFloat(s[start:end], 64)
		if u := unitRE.FindStringSubmatch(s[end:]); u != nil && wordEnd(s, end+len(u[0])) {
			n.unit, n.end = u[1], end+len(u[0])
		}
		if !wordEnd(s, n.end) || (signed && n.unit == "") {
			continue
		}
		out = append(out, n)
	}
	return out
}

// wordEnd reports whether a word may end at i: at the end, before a space
// or punctuation.
func wordEnd(s string, i int) bool {
	return i == len(s) || strings.ContainsRune(" ,;:)]-|", rune(s[i]))
}

// cells splits a line at runs of two or more spaces.
func cells(s string) []column {
	var out []column
	for _, m := range cellRE.FindAllStringIndex(s, -1) {
		out = append(out, column{name: s[m[0]:m[1]], end: m[1]})
	}
	return out
}

// labelOf is a line's label: its text up to the first ':' before the
// first number, else up to the first number, without a parenthesis it
// opens.
func labelOf(s string, nums []number) string {
	l := strings.TrimSuffix(s[:labelEnd(s, nums)], ":")
	if i := strings.Index(l, " ("); i >= 0 && !strings.Contains(l[i:], ")") {
		l = l[:i]
	}
	return trim(l)
}

func labelEnd(s string, nums []number) int {
	end := len(s)
	if len(nums) > 0 {
		end = nums[0].start
	}
	if i := strings.IndexByte(s[:end], ':'); i >= 0 {
		return i + 1
	}
	return end
}

const separators = ",;:(+|"

// lastWords is the text after the last separator — not counting a '('
// closed within it — trimmed.
func lastWords(s string) string {
	i := strings.LastIndexAny(s, separators)
	for i >= 0 && s[i] == '(' && strings.Contains(s[i:], ")") {
		i = strings.LastIndexAny(s[:i], separators)
	}
	return trim(s[i+1:])
}

// firstWords is the text before the first separator or ')', trimmed.
func firstWords(s string) string {
	if i := strings.IndexAny(s, separators+")"); i >= 0 {
		s = s[:i]
	}
	return trim(s)
}

// trim removes spaces and the punctuation that joins words to numbers.
func trim(s string) string { return strings.Trim(s, " =,;") }
