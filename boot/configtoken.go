package boot

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// The tokens of configScan: values, strings, blanks and comments.

// value reads the value of key p.
func (s *configScan) value(p keyPath) {
	if s.pos >= len(s.src) {
		s.stop(p.indexed)
		return
	}
	switch rest := s.src[s.pos:]; {
	case strings.HasPrefix(rest, `"""`), strings.HasPrefix(rest, `'''`):
		s.multilineString(p)
	case rest[0] == '"':
		if !s.basicString() {
			s.stop(p.indexed)
		}
	case rest[0] == '\'':
		if !s.literalString() {
			s.stop(p.indexed)
		}
	case rest[0] == '[':
		s.array(p)
	case rest[0] == '{':
		s.inlineTable(p)
	default:
		s.scalar(p)
	}
}

// array reads [v, v, ...]; element i of key a has the path a#i.
func (s *configScan) array(p keyPath) {
	p.depth++
	if p = s.checkLimits(p); p.indexed == "" {
		return
	}
	s.pos++ // [
	for i := 0; ; i++ {
		s.skipBlank()
		if s.pos < len(s.src) && s.src[s.pos] == ']' {
			s.pos++
			return
		}
		elem := p
		elem.indexed += "#" + strconv.Itoa(i)
		s.work += len(elem.indexed)
		if s.pos < len(s.src) && s.src[s.pos] == '{' {
			s.lines[elem.indexed] = s.line
		}
		s.value(elem)
		if s.done() {
			return
		}
		s.skipBlank()
		if s.pos < len(s.src) && s.src[s.pos] == ',' {
			s.pos++
			continue
		}
		if s.pos < len(s.src) && s.src[s.pos] == ']' {
			s.pos++
			return
		}
		s.stop(p.indexed)
		return
	}
}

// inlineTable reads { k = v, ... }, newlines and comments allowed as in
// TOML 1.1.
func (s *configScan) inlineTable(p keyPath) {
	s.pos++ // {
	for {
		s.skipBlank()
		if s.pos < len(s.src) && s.src[s.pos] == '}' {
			s.pos++
			return
		}
		k := s.dottedKey(p)
		if k.indexed == "" {
			return
		}
		s.skipSpace()
		if s.pos >= len(s.src) || s.src[s.pos] != '=' {
			s.stop(k.indexed)
			return
		}
		s.pos++
		s.skipSpace()
		s.value(k)
		if s.done() {
			return
		}
		s.skipBlank()
		if s.pos < len(s.src) && s.src[s.pos] == ',' {
			s.pos++
			continue
		}
		if s.pos < len(s.src) && s.src[s.pos] == '}' {
			s.pos++
			return
		}
		s.stop(k.indexed)
		return
	}
}

// scalar skips a number, boolean or date-time. A date and a time may be
// separated by a space.
func (s *configScan) scalar(p keyPath) {
	start := s.pos
	s.scalarRun()
	if s.pos == start {
		s.stop(p.indexed)
		return
	}
	v := s.src[start:s.pos]
	if len(v) == 10 && v[4] == '-' && v[7] == '-' && s.pos+1 < len(s.src) && s.src[s.pos] == ' ' && isDigit(s.src[s.pos+1]) {
		s.pos++
		s.scalarRun()
	}
}

func (s *configScan) scalarRun() {
	for s.pos < len(s.src) && !strings.ContainsRune(" \t\r\n,]}#", rune(s.src[s.pos])) {
		s.pos++
	}
}

// basicString reads "...", single line, with escapes.
func (s *configScan) basicString() bool {
	for s.pos++; s.pos < len(s.src); s.pos++ {
		switch s.src[s.pos] {
		case '"':
			s.pos++
			return true
		case '\\':
			s.pos++
		case '\n':
			return false
		}
	}
	return false
}

// literalString reads '...', single line, no escapes.
func (s *configScan) literalString() bool {
	end := strings.IndexAny(s.src[s.pos+1:], "'\n")
	if end < 0 || s.src[s.pos+1+end] != '\'' {
		return false
	}
	s.pos += end + 2
	return true
}

// multilineString reads a multi-line basic or literal string; one never
// closed is reported at the line it opens.
func (s *configScan) multilineString(p keyPath) {
	line, delim := s.line, s.src[s.pos:s.pos+3]
	s.pos += 3
	for s.pos < len(s.src) {
		switch c := s.src[s.pos]; {
		case c == '\n':
			s.line++
			s.pos++
		case c == '\\' && delim[0] == '"':
			s.pos++
			if s.pos < len(s.src) && s.src[s.pos] != '\n' {
				s.pos++
			}
		case strings.HasPrefix(s.src[s.pos:], delim):
			s.pos += 3
			// Up to two more quotes belong to the string.
			for i := 0; i < 2 && s.pos < len(s.src) && s.src[s.pos] == delim[0]; i++ {
				s.pos++
			}
			return
		default:
			s.pos++
		}
	}
	s.open = &ConfigError{Line: line, Key: p.indexed, Msg: "multi-line string opened here is never closed with " + delim}
}

// skipSpace skips spaces and tabs.
func (s *configScan) skipSpace() {
	for s.pos < len(s.src) && (s.src[s.pos] == ' ' || s.src[s.pos] == '\t') {
		s.pos++
	}
}

// skipBlank skips spaces, newlines and comments.
func (s *configScan) skipBlank() {
	for s.pos < len(s.src) {
		switch s.src[s.pos] {
		case ' ', '\t':
			s.pos++
		case '\n':
			s.line++
			s.pos++
		case '\r':
			if !strings.HasPrefix(s.src[s.pos:], "\r\n") {
				return
			}
			s.pos++
		case '#':
			s.skipComment()
		default:
			return
		}
	}
}

func (s *configScan) skipComment() {
	if i := strings.IndexByte(s.src[s.pos:], '\n'); i >= 0 {
		s.pos += i
	} else {
		s.pos = len(s.src)
	}
}

// endOfLine checks that a header or key-value (of key) ends its line.
func (s *configScan) endOfLine(key keyPath) {
	s.skipSpace()
	if s.pos < len(s.src) && s.src[s.pos] == '#' {
		s.skipComment()
	}
	switch {
	case s.pos >= len(s.src):
	case s.src[s.pos] == '\n', strings.HasPrefix(s.src[s.pos:], "\r\n"):
	default:
		s.stop(key.indexed)
	}
}

// decodeBasic decodes the escapes of a basic string's body.
func decodeBasic(body string) (string, bool) {
	if !strings.Contains(body, `\`) {
		return body, true
	}
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i++; i >= len(body) {
			return "", false
		}
		if r, ok := simpleEscape(body[i]); ok {
			b.WriteByte(r)
			continue
		}
		n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[body[i]]
		if n == 0 || i+n >= len(body) {
			return "", false
		}
		v, err := strconv.ParseUint(body[i+1:i+1+n], 16, 32)
		if err != nil || !utf8.ValidRune(rune(v)) {
			return "", false
		}
		b.WriteRune(rune(v))
		i += n
	}
	return b.String(), true
}

// simpleEscape returns what the escape \c stands for.
func simpleEscape(c byte) (byte, bool) {
	i := strings.IndexByte(`btnfre"\`, c)
	if i < 0 {
		return 0, false
	}
	return "\b\t\n\f\r\x1b\"\\"[i], true
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
