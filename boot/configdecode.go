package boot

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// maxErrors bounds the errors reported for one file: a file of 100,000
// mistakes must not take minutes to print on a serial console.
const maxErrors = 50

// decode runs the TOML library, turning a panic in it into an error.
func decode(src string, v any) (md toml.MetaData, err error) {
	err = safely(func() error {
		var err error
		md, err = toml.Decode(src, v)
		return err
	})
	return md, err
}

// safely calls f, turning a panic into an error.
func safely(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the TOML parser failed: %v", r)
		}
	}()
	return f()
}

// decodeError locates an error of the TOML library. It reports syntax
// errors as ParseError, with the line where it stopped, and values of the
// wrong type as "line N (last key K): ..." messages whose line is that of
// K's last occurrence in the file (the library keys positions by name,
// without array indexes): those are located again here.
func decodeError(src string, err error, scan *configScan, pos *keyPositions) *ConfigError {
	e := libraryError(err)
	if o := scan.open; o != nil && (e.Line == 0 || e.Line >= o.Line) {
		return o // a string or header never closed: report where it opens
	}
	if _, perr := decode(src, &struct{}{}); perr == nil {
		if indexed := failingKey(src, e.Key); indexed != "" {
			if l := pos.line(indexed); l > 0 {
				e.Line = l
			}
		}
	}
	// The library names the table it was in; the scanner may know the key.
	if k := plainKey(scan.stopKey); scan.stopped && scan.stopLine == e.Line &&
		(e.Key == "" || strings.HasPrefix(k, e.Key+".")) {
		e.Key = k
	}
	return e
}

// libraryError takes line, key and message out of a TOML library error.
func libraryError(err error) *ConfigError {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		e := &ConfigError{Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		if k, ok := definedKey(pe.Message); ok {
			e.Key = k // the key defined twice, not the table it is in
		}
		return e
	}
	if line, quoted, msg, ok := typeError(err.Error()); ok {
		key, kerr := strconv.Unquote(quoted)
		if kerr != nil {
			key = quoted
		}
		return &ConfigError{Line: line, Key: key, Msg: msg}
	}
	return &ConfigError{Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

// definedKey returns KEY of the library's message "Key 'KEY' has already
// been defined" or "Key 'KEY' was already created" (on its first line,
// up to the last such ending there).
func definedKey(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, "Key '")
	if !ok {
		return "", false
	}
	if i := strings.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[:i]
	}
	i := max(strings.LastIndex(rest, "' has already been defined"), strings.LastIndex(rest, "' was already created"))
	if i < 0 {
		return "", false
	}
	return rest[:i], true
}

// typeError takes the parts out of the library's decoding error
// "toml: [line N ](last key "KEY"): MESSAGE": N (0 without), KEY still
// Go-quoted, and MESSAGE, which may span lines.
func typeError(s string) (line int, key, msg string, ok bool) {
	s, ok = strings.CutPrefix(s, "toml: ")
	if !ok {
		return 0, "", "", false
	}
	if rest, ok := strings.CutPrefix(s, "line "); ok {
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 || !strings.HasPrefix(rest[n:], " ") {
			return 0, "", "", false
		}
		line, _ = strconv.Atoi(rest[:n])
		s = rest[n+1:]
	}
	s, ok = strings.CutPrefix(s, "(last key ")
	if !ok {
		return 0, "", "", false
	}
	end := quotedEnd(s)
	if end < 0 || !strings.HasPrefix(s[end:], "): ") {
		return 0, "", "", false
	}
	return line, s[:end], s[end+3:], true
}

// failingKey returns the indexed path of key (a plain path the library
// failed to decode) in the [[container]], and [[container.mount]], that
// fails to decode on its own; "" when key is not in a container.
func failingKey(src, key string) string {
	rest, ok := strings.CutPrefix(key, "container")
	if !ok || rest != "" && rest[0] != '.' {
		return ""
	}
	var doc struct {
		Container []toml.Primitive `toml:"container"`
	}
	md, err := decode(src, &doc)
	if err != nil {
		return ""
	}
	for i, p := range doc.Container {
		if safely(func() error { return md.PrimitiveDecode(p, &ContainerConfig{}) }) == nil {
			continue
		}
		indexed := "container#" + strconv.Itoa(i)
		mountKey, ok := strings.CutPrefix(rest, ".mount")
		if !ok || mountKey != "" && mountKey[0] != '.' {
			return indexed + rest
		}
		var c struct {
			Mount []toml.Primitive `toml:"mount"`
		}
		if safely(func() error { return md.PrimitiveDecode(p, &c) }) != nil {
			return indexed + rest
		}
		for j, m := range c.Mount {
			if safely(func() error { return md.PrimitiveDecode(m, &MountConfig{}) }) != nil {
				return indexed + ".mount#" + strconv.Itoa(j) + mountKey
			}
		}
		return indexed + rest
	}
	return ""
}

// unknownKeys reports the keys the TOML library found no place for. Only
// the outermost is reported: in an unknown [table], the table. Past
// maxErrors they are only counted: the count is returned.
func unknownKeys(v *validator, md toml.MetaData) (more int) {
	undecoded := md.Undecoded()
	names := make([]string, len(undecoded))
	unknown := make(map[string]bool, len(undecoded))
	for i, k := range undecoded {
		names[i] = k.String()
		unknown[names[i]] = true
	}
	reported := 0
	for i, k := range undecoded {
		// The name of k's parent is a prefix of k's.
		parent := len(names[i]) - len(toml.Key{k[len(k)-1]}.String()) - 1
		switch {
		case parent > 0 && unknown[names[i][:parent]]:
		case reported == maxErrors:
			more++
		default:
			reported++
			v.addKey(v.pos.indexedUndecoded(names[i]), "unknown key")
		}
	}
	return more
}

// finish sorts the errors of a file by line, bounds their number and
// length (long quoted values are cut with quoteValue), and joins them.
// more counts errors found but not in errs.
func finish(path string, errs []error, more int) error {
	list := make([]*ConfigError, 0, len(errs))
	for _, err := range errs {
		e, ok := err.(*ConfigError)
		if !ok {
			e = &ConfigError{Msg: err.Error()}
		}
		list = append(list, e)
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Line < list[j].Line })
	if n := len(list) + more - maxErrors; n > 0 && len(list) >= maxErrors {
		next := list[maxErrors-1]
		list = append(list[:maxErrors-1], &ConfigError{
			Line: next.Line, Key: next.Key, Msg: fmt.Sprintf("%d more errors from here on are not shown", n+1),
		})
	}
	out := make([]error, len(list))
	for i, e := range list {
		e.File, e.Key, e.Msg = path, cutKey(plainKey(e.Key)), cutMessage(cutQuoted(e.Msg))
		out[i] = e
	}
	return errors.Join(out...)
}
