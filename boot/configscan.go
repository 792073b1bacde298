package boot

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Limits on the shape of a config, checked by scanConfig before the TOML
// library sees the file: the library's work grows with the square of the
// nesting depth and with the length of key names times the number of keys,
// so a small hostile file could hang or exhaust PID 1.
const (
	// maxNesting bounds how deep a value sits: every part of its key's
	// full name (table header, dotted key, enclosing inline tables) and
	// every enclosing array is one level. berth's deepest key has 4.
	maxNesting = 32
	// maxKeyBytes bounds a key's full name (its table's and its own
	// parts as written in the file, and the dots between them).
	maxKeyBytes = 128
)

// configScan is one pass over a TOML document, by a tokenizer that knows
// TOML's strings (basic, literal, multi-line), comments, headers, inline
// tables and arrays. It refuses files passing the limits above, finds the
// line of every key, and remembers the first construct that is never
// closed. It does not validate: on anything it does not understand it
// stops, and the TOML library reports the error.
type configScan struct {
	src  string
	pos  int
	line int

	// lines maps the indexed path of every header and key (see
	// keyPositions) to the line it is on.
	lines map[string]int
	// keys lists the indexed path of every header and key in document
	// order, as the TOML library's MetaData.Keys does.
	keys []string
	// elements counts the elements of each array of tables, by indexed
	// path.
	elements map[string]int

	limit *ConfigError // a limit is passed: the file is refused
	open  *ConfigError // the first string or header never closed
	// stopped is set when the scanner met something it does not
	// understand; stopKey and stopLine say where.
	stopped  bool
	stopKey  string
	stopLine int

	// work counts the bytes read and the bytes of key paths built, so
	// that tests can check it grows linearly with the file.
	work int
}

// keyPath is the full name of a key, indexed with the element numbers of
// arrays (container#1.mount#0), its parts as toml.Key.String writes them;
// depth and bytes count towards the limits.
type keyPath struct {
	indexed      string
	depth, bytes int
}

// scanConfig scans src; see configScan.
func scanConfig(src string) *configScan {
	s := &configScan{src: src, line: 1, lines: map[string]int{}, elements: map[string]int{}}
	// The byte order marks the TOML library skips.
	for _, bom := range []string{"\xef\xbb\xbf", "\xff\xfe", "\xfe\xff"} {
		if strings.HasPrefix(src, bom) {
			s.pos = len(bom)
			break
		}
	}
	var table keyPath
	for !s.done() {
		s.skipBlank()
		if s.pos >= len(s.src) {
			break
		}
		var last keyPath // the header or key of this line
		if s.src[s.pos] == '[' {
			table = s.header()
			last = table
		} else {
			last = s.keyValue(table)
		}
		if s.done() {
			break
		}
		s.endOfLine(last)
	}
	s.work += s.pos
	return s
}

func (s *configScan) done() bool { return s.stopped || s.limit != nil || s.open != nil }

// stop gives up at the current line; key is what was being read.
func (s *configScan) stop(key string) {
	if !s.done() {
		s.stopped, s.stopKey, s.stopLine = true, key, s.line
	}
}

// header reads a [table] or [[array]] header and returns its path.
func (s *configScan) header() keyPath {
	line := s.line
	array := strings.HasPrefix(s.src[s.pos:], "[[")
	s.pos++
	if array {
		s.pos++
	}
	parts := s.keyParts(keyPath{})
	if parts == nil {
		return keyPath{}
	}
	var p keyPath
	for i, part := range parts {
		p = s.extend(p, part)
		if p.indexed == "" {
			return keyPath{}
		}
		slot := p.indexed
		if array && i == len(parts)-1 {
			s.elements[slot]++
			if _, ok := s.lines[slot]; !ok {
				s.lines[slot] = line
			}
		}
		if n := s.elements[slot]; n > 0 {
			p.indexed += "#" + strconv.Itoa(n-1)
		}
	}
	s.skipSpace()
	closing := "]"
	if array {
		closing = "]]"
	}
	if strings.HasPrefix(s.src[s.pos:], closing) {
		s.pos += len(closing)
		s.record(p, line)
		return p
	}
	rest := strings.TrimLeft(strings.TrimPrefix(s.src[s.pos:], "]"), " \t")
	if rest == "" || rest[0] == '\n' || rest[0] == '\r' || rest[0] == '#' {
		s.open = &ConfigError{Line: line, Key: p.indexed, Msg: "table header not closed with " + closing}
	} else {
		s.stop(p.indexed)
	}
	return keyPath{}
}

// keyValue reads KEY = VALUE in table and returns the key's path.
func (s *configScan) keyValue(table keyPath) keyPath {
	p := s.dottedKey(table)
	if p.indexed == "" {
		return p
	}
	s.skipSpace()
	if s.pos >= len(s.src) || s.src[s.pos] != '=' {
		s.stop(p.indexed)
		return p
	}
	s.pos++
	s.skipSpace()
	s.value(p)
	return p
}

// dottedKey reads a possibly dotted key, records its line (and those of
// the tables its dots create) and returns its full path under parent.
func (s *configScan) dottedKey(parent keyPath) keyPath {
	line := s.line
	parts := s.keyParts(parent)
	if parts == nil {
		return keyPath{}
	}
	p := parent
	for _, part := range parts {
		if p = s.extend(p, part); p.indexed == "" {
			return keyPath{}
		}
		if _, ok := s.lines[p.indexed]; !ok {
			s.lines[p.indexed] = line
		}
	}
	s.record(p, line)
	return p
}

// keyPart is one part of a key: its name and how many bytes it took.
type keyPart struct {
	name string
	raw  int
}

// keyParts reads the parts of a dotted key (a.b."c d"); parent names the
// key being read should it stop.
func (s *configScan) keyParts(parent keyPath) []keyPart {
	var parts []keyPart
	for {
		s.skipSpace()
		start := s.pos
		name, ok := s.keyName()
		if !ok {
			s.stop(parent.indexed)
			return nil
		}
		parts = append(parts, keyPart{name, s.pos - start})
		if len(parts) > maxNesting {
			// extend reports it; reading on would only cost time.
			return parts
		}
		s.skipSpace()
		if s.pos >= len(s.src) || s.src[s.pos] != '.' {
			return parts
		}
		s.pos++
	}
}

// keyName reads one bare or quoted key name.
func (s *configScan) keyName() (string, bool) {
	if s.pos >= len(s.src) {
		return "", false
	}
	switch s.src[s.pos] {
	case '"':
		start := s.pos
		if !s.basicString() {
			return "", false
		}
		return decodeBasic(s.src[start+1 : s.pos-1])
	case '\'':
		start := s.pos
		if !s.literalString() {
			return "", false
		}
		return s.src[start+1 : s.pos-1], true
	}
	start := s.pos
	for s.pos < len(s.src) && isBareKeyChar(s.src[s.pos]) {
		s.pos++
	}
	return s.src[start:s.pos], s.pos > start
}

// extend appends a key part to p, checking the limits; it returns the
// zero path when a limit is passed.
func (s *configScan) extend(p keyPath, part keyPart) keyPath {
	q := toml.Key{part.name}.String()
	p.depth++
	p.bytes += part.raw
	if p.indexed != "" {
		q = "." + q
		p.bytes++ // the dot: the full name is "table.key"
	}
	p.indexed += q
	s.work += len(p.indexed)
	return s.checkLimits(p)
}

// checkLimits refuses a path deeper or longer than the limits.
func (s *configScan) checkLimits(p keyPath) keyPath {
	switch {
	case p.bytes > maxKeyBytes:
		s.limit = &ConfigError{Line: s.line, Key: p.indexed,
			Msg: "key name longer than " + strconv.Itoa(maxKeyBytes) + " bytes"}
	case p.depth > maxNesting:
		s.limit = &ConfigError{Line: s.line, Key: p.indexed,
			Msg: "nested more than " + strconv.Itoa(maxNesting) + " levels deep (tables, keys and arrays)"}
	default:
		return p
	}
	return keyPath{}
}

// record notes the line of a header or key, and its place in the
// document order.
func (s *configScan) record(p keyPath, line int) {
	if _, ok := s.lines[p.indexed]; !ok {
		s.lines[p.indexed] = line
	}
	s.keys = append(s.keys, p.indexed)
}
