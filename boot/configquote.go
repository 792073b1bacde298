package boot

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error messages echo what the file said, but never more than this: a
// 512 KiB hostname is not printed on the console.
const (
	maxQuoted  = 64  // bytes of a value quoted in a message
	maxKeyShow = 64  // bytes of a key name shown in an error
	maxMessage = 256 // bytes of a whole message
)

// quoteValue quotes a value from the config for an error message, as %q
// does, cut to its first 64 bytes followed by "…(N bytes)" when longer.
// Validation code should use it for every value it echoes.
func quoteValue(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(cutUTF8(s, maxQuoted)) + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// cutQuoted cuts, with quoteValue, every long Go-quoted string in a
// message (the TOML library quotes what it did not expect with %q).
func cutQuoted(m string) string {
	if len(m) <= maxQuoted+2 {
		return m
	}
	var b strings.Builder
	for i := 0; i < len(m); {
		end := -1
		if m[i] == '"' {
			end = quotedEnd(m[i:])
		}
		if end < 0 {
			b.WriteByte(m[i])
			i++
			continue
		}
		q := m[i : i+end]
		if s, err := strconv.Unquote(q); err == nil {
			q = quoteValue(s)
		}
		b.WriteString(q)
		i += end
	}
	return b.String()
}

// quotedEnd returns the length of the double-quoted string s starts with
// — a quote, then characters other than a quote or a backslash, or a
// backslash and a character other than a newline, then a quote — or -1
// when s does not start with one.
func quotedEnd(s string) int {
	if s == "" || s[0] != '"' {
		return -1
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '"':
			return i + 1
		case '\\':
			if i+1 == len(s) || s[i+1] == '\n' {
				return -1
			}
			i++
		}
	}
	return -1
}

// cutKey shortens a key name for an error message.
func cutKey(k string) string {
	if len(k) <= maxKeyShow {
		return k
	}
	return cutUTF8(k, maxKeyShow) + "…"
}

// cutMessage bounds an error message, whatever it quotes.
func cutMessage(m string) string {
	if len(m) <= maxMessage {
		return m
	}
	return cutUTF8(m, maxMessage) + "…(" + strconv.Itoa(len(m)) + " bytes)"
}

// cutUTF8 returns at most n bytes of s, not splitting a UTF-8 sequence.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n]
}
