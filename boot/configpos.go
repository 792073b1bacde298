package boot

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// keyPositions finds the line of each key in a TOML file, so that semantic
// errors and unknown keys can be reported as FILE:LINE (BurntSushi/toml
// keeps key positions private).
//
// Keys are "indexed paths": dotted TOML keys in which each element of an
// array of tables carries its index, e.g. "container#1.limits.memory" for
// the memory key of the second [[container]].
type keyPositions struct {
	lines map[string]int
	// order lists every key of the document, unindexed and indexed, in
	// document order; used to index the keys toml reports as undecoded.
	order []orderedKey
	used  []bool
}

type orderedKey struct{ plain, indexed string }

func newKeyPositions(data string, md toml.MetaData) *keyPositions {
	p := &keyPositions{lines: scanKeyLines(data, func(k []string) bool { return md.Type(k...) == "ArrayHash" })}
	counts := map[string]int{}
	for _, k := range md.Keys() {
		indexed := ""
		for j, part := range k {
			seg := part
			if md.Type(k[:j+1]...) == "ArrayHash" {
				slot := indexed + "." + part
				if j == len(k)-1 {
					counts[slot]++
				}
				seg += "#" + strconv.Itoa(counts[slot]-1)
			}
			if indexed == "" {
				indexed = seg
			} else {
				indexed += "." + seg
			}
		}
		p.order = append(p.order, orderedKey{k.String(), indexed})
	}
	p.used = make([]bool, len(p.order))
	return p
}

// indexedUndecoded returns the indexed path of an undecoded key, taking
// the first occurrence not returned before.
func (p *keyPositions) indexedUndecoded(k toml.Key) string {
	s := k.String()
	for i, o := range p.order {
		if !p.used[i] && o.plain == s {
			p.used[i] = true
			return o.indexed
		}
	}
	return s
}

// line returns the line of the indexed key, or of its closest ancestor
// when the key itself is not in the file (a missing key), or 0.
func (p *keyPositions) line(indexed string) int {
	for k := indexed; k != ""; {
		if l, ok := p.lines[k]; ok {
			return l
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

var indexRE = lazyRegexp(`#\d+`)

// plainKey drops the array indexes from an indexed path.
func plainKey(indexed string) string { return indexRE().ReplaceAllString(indexed, "") }

// scanKeyLines maps the indexed path of every table header and key to its
// line. isArrayTable tells which unindexed paths are arrays of tables.
func scanKeyLines(data string, isArrayTable func([]string) bool) map[string]int {
	lines := map[string]int{}
	counts := map[string]int{} // indexed parent + "." + name -> elements seen
	table := ""                // indexed path of the current table
	var skip func(string) bool // set while inside a multi-line value
	for n, raw := range strings.Split(data, "\n") {
		lineNo := n + 1
		if skip != nil {
			if skip(raw) {
				skip = nil
			}
			continue
		}
		s := strings.TrimSpace(raw)
		if s == "" || s[0] == '#' {
			continue
		}
		if strings.HasPrefix(s, "[") {
			array := strings.HasPrefix(s, "[[")
			parts, _ := parseDottedKey(strings.TrimLeft(s, "["))
			if parts == nil {
				continue
			}
			table = indexPath(parts, isArrayTable, array, counts)
			lines[table] = lineNo
			continue
		}
		parts, rest := parseDottedKey(s)
		if parts == nil || !strings.HasPrefix(strings.TrimSpace(rest), "=") {
			continue
		}
		full := joinKey(table, strings.Join(parts, "."))
		lines[full] = lineNo
		value := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(rest), "="))
		switch {
		case strings.HasPrefix(value, `"""`), strings.HasPrefix(value, `'''`):
			delim := value[:3]
			if !strings.Contains(value[3:], delim) {
				skip = func(l string) bool { return strings.Contains(l, delim) }
			}
		case strings.HasPrefix(value, "{"):
			scanInlineTable(value, full, lineNo, lines)
		case strings.HasPrefix(value, "["):
			depth := bracketDepth(value)
			if depth > 0 {
				skip = func(l string) bool { depth += bracketDepth(l); return depth <= 0 }
			}
		}
	}
	return lines
}

// indexPath builds the indexed path of a table header. Elements of arrays
// of tables along the way get the index of their latest element; the last
// part of a [[header]] starts a new element.
func indexPath(parts []string, isArrayTable func([]string) bool, newElement bool, counts map[string]int) string {
	indexed := ""
	for j, part := range parts {
		seg := part
		if isArrayTable(parts[:j+1]) {
			slot := indexed + "." + part
			if newElement && j == len(parts)-1 {
				counts[slot]++
			}
			if counts[slot] > 0 {
				seg += "#" + strconv.Itoa(counts[slot]-1)
			}
		}
		indexed = joinKey(indexed, seg)
	}
	return indexed
}

func joinKey(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// scanInlineTable records the keys of a one-line inline table.
func scanInlineTable(value, prefix string, lineNo int, lines map[string]int) {
	body := strings.TrimPrefix(value, "{")
	for body != "" {
		body = strings.TrimLeft(body, " \t,")
		parts, rest := parseDottedKey(body)
		if parts == nil {
			return
		}
		key := joinKey(prefix, strings.Join(parts, "."))
		lines[key] = lineNo
		rest = strings.TrimSpace(rest)
		if !strings.HasPrefix(rest, "=") {
			return
		}
		rest = strings.TrimSpace(rest[1:])
		if strings.HasPrefix(rest, "{") {
			scanInlineTable(rest, key, lineNo, lines)
		}
		// Skip the value: up to the next comma outside strings/brackets.
		depth, inStr := 0, byte(0)
		i := 0
		for ; i < len(rest); i++ {
			c := rest[i]
			switch {
			case inStr != 0:
				if c == inStr {
					inStr = 0
				} else if c == '\\' && inStr == '"' {
					i++
				}
			case c == '"' || c == '\'':
				inStr = c
			case c == '[' || c == '{':
				depth++
			case c == ']' || c == '}':
				depth--
			}
			if depth < 0 || (depth == 0 && c == ',') {
				break
			}
		}
		if i >= len(rest) || depth < 0 {
			return
		}
		body = rest[i+1:]
	}
}

// parseDottedKey parses a (possibly dotted, possibly quoted) key at the
// start of s and returns its parts and the text after it.
func parseDottedKey(s string) ([]string, string) {
	var parts []string
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, ""
		}
		var part string
		switch s[0] {
		case '"', '\'':
			end := strings.IndexByte(s[1:], s[0])
			if end < 0 {
				return nil, ""
			}
			part, s = s[1:1+end], s[2+end:]
		default:
			i := 0
			for i < len(s) && isBareKeyChar(s[i]) {
				i++
			}
			if i == 0 {
				return nil, ""
			}
			part, s = s[:i], s[i:]
		}
		parts = append(parts, part)
		t := strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(t, ".") {
			return parts, s
		}
		s = t[1:]
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// bracketDepth is the change in [ ] nesting over a line, ignoring brackets
// in strings and comments.
func bracketDepth(l string) int {
	depth, inStr := 0, byte(0)
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case inStr != 0:
			if c == inStr {
				inStr = 0
			} else if c == '\\' && inStr == '"' {
				i++
			}
		case c == '#':
			return depth
		case c == '"' || c == '\'':
			inStr = c
		case c == '[':
			depth++
		case c == ']':
			depth--
		}
	}
	return depth
}
