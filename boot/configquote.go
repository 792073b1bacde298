package boot

import (
	"strconv"
	"unicode/utf8"

	"berth/internal/lazyre"
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
	return quotedRE().ReplaceAllStringFunc(m, func(q string) string {
		if s, err := strconv.Unquote(q); err == nil {
			return quoteValue(s)
		}
		return q
	})
}

var quotedRE = lazyre.New(`"(?:[^"\\]|\\.)*"`)

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
