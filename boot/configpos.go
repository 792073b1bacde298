package boot

import "strings"

// keyPositions finds the line of each key in a TOML file, so that semantic
// errors and unknown keys can be reported as FILE:LINE (BurntSushi/toml
// keeps key positions private).
//
// Keys are "indexed paths": dotted TOML keys, written as toml.Key.String
// writes them, in which each element of an array carries its index, e.g.
// "container#1.limits.memory" for the memory key of the second
// [[container]], and "container#1.mount#0.source" for the source of its
// first [[container.mount]] (or of the first table of mount = [{...}]).
type keyPositions struct {
	lines map[string]int
	// keys are the indexed paths of every header and key in document
	// order; next is where indexedUndecoded looks next, lost is set when
	// it found no match (the scanner stopped early).
	keys []string
	next int
	lost bool
	// work counts the steps of lookups, so that tests can check it grows
	// linearly with the file.
	work int
}

func newKeyPositions(scan *configScan) *keyPositions {
	return &keyPositions{lines: scan.lines, keys: scan.keys}
}

// indexedUndecoded returns the indexed path of a key the TOML library
// reports as undecoded, given as toml.Key.String writes it. The library
// lists undecoded keys in document order, a subsequence of the scanner's
// keys: calls must come in that order, and take linear time in all.
func (p *keyPositions) indexedUndecoded(plain string) string {
	if p.lost {
		return plain
	}
	for start := p.next; p.next < len(p.keys); {
		k := p.keys[p.next]
		p.next++
		p.work++
		if samePlain(k, plain) {
			return k
		}
		if p.next == len(p.keys) {
			p.next, p.lost = start, true
		}
	}
	p.lost = true
	return plain
}

// line returns the line of the indexed key, or of its closest ancestor
// when the key itself is not in the file (a missing key), or 0.
func (p *keyPositions) line(indexed string) int {
	for k := indexed; k != ""; k = parentKey(k) {
		p.work++
		if l, ok := p.lines[k]; ok {
			return l
		}
	}
	return 0
}

// parentKey drops the last part of an indexed path: its array index if it
// has one ("mount#0" -> "mount"), else its last name. Dots and '#' in
// quoted names are part of the name.
func parentKey(k string) string {
	cut := 0
	eachPart(k, func(start int) { cut = start })
	if cut == 0 {
		return ""
	}
	return k[:cut-1]
}

// eachPart calls f with the offset of each part of an indexed path after
// the first: the offsets just after each separator ('.' or '#') outside
// quotes.
func eachPart(k string, f func(start int)) {
	quoted := false
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c == '"':
			quoted = !quoted
		case c == '\\' && quoted:
			i++
		case (c == '.' || c == '#') && !quoted:
			f(i + 1)
		}
	}
}

// plainKey drops the array indexes from an indexed path.
func plainKey(indexed string) string {
	if !strings.Contains(indexed, "#") {
		return indexed
	}
	var b strings.Builder
	last := 0
	eachPart(indexed, func(start int) {
		if indexed[start-1] == '#' {
			b.WriteString(indexed[last : start-1])
			last = start
			for last < len(indexed) && isDigit(indexed[last]) {
				last++
			}
		}
	})
	b.WriteString(indexed[last:])
	return b.String()
}

// samePlain reports whether indexed, without its array indexes, is plain.
func samePlain(indexed, plain string) bool {
	j, quoted := 0, false
	for i := 0; i < len(indexed); i++ {
		c := indexed[i]
		if c == '#' && !quoted {
			for i+1 < len(indexed) && isDigit(indexed[i+1]) {
				i++
			}
			continue
		}
		if j >= len(plain) || plain[j] != c {
			return false
		}
		j++
		switch {
		case c == '"':
			quoted = !quoted
		case c == '\\' && quoted && i+1 < len(indexed):
			i++
			if j >= len(plain) || plain[j] != indexed[i] {
				return false
			}
			j++
		}
	}
	return j == len(plain)
}
