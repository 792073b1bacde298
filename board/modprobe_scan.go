package board

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
)

// resolvable reports whether the index in dir has what name stands for
// — the module of that name, a built-in one, or an alias whose pattern
// matches — as resolve would, but reading modules.dep, modules.builtin
// and modules.alias as streams, line by line, without building the
// index. The kernel asks for many names no module has (net-pf-NN at
// each socket() of an address family the board has no module for, up
// to 50 helpers at once): such a miss costs a read of the files and a
// few allocations, not the whole index in memory. An error is one
// reading modules.dep (which must exist) or another existing file.
func resolvable(dir, name string) (bool, error) {
	mod := modName(name)
	sameModule := func(f [][]byte) bool { return moduleNameIs(bytes.TrimSuffix(f[0], []byte(":")), mod) }
	if found, err := scanFields(filepath.Join(dir, "modules.dep"), sameModule); found || err != nil {
		return found, err
	}
	found, err := scanFields(filepath.Join(dir, "modules.builtin"), sameModule)
	if found || (err != nil && !errors.Is(err, fs.ErrNotExist)) {
		return found, err
	}
	want := aliasNormalize(name)
	found, err = scanFields(filepath.Join(dir, "modules.alias"), func(f [][]byte) bool {
		if len(f) != 3 || string(f[0]) != "alias" || !literalPrefixOf(f[1], want) {
			return false // most lines: no string made
		}
		ok, err := path.Match(aliasNormalize(string(f[1])), want)
		return err == nil && ok
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return found, nil
}

// scanFields calls match with the fields of each line of the index file
// name that is neither empty nor a comment, until it returns true. The
// fields are the scanner's bytes, valid for the call only.
func scanFields(name string, match func(fields [][]byte) bool) (bool, error) {
	file, err := openIndexFile(name)
	if err != nil {
		return false, err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 4096), 1<<20)
	fields := make([][]byte, 0, 8)
	for sc.Scan() {
		fields = appendFields(fields[:0], sc.Bytes())
		if len(fields) > 0 && fields[0][0] != '#' && match(fields) {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read %s: %w", name, err)
	}
	return false, nil
}

// appendFields appends line's space-separated fields to fields, as
// strings.Fields splits (ASCII white space), without allocating once
// fields has room.
func appendFields(fields [][]byte, line []byte) [][]byte {
	start := -1
	for i, c := range line {
		space := c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
		switch {
		case space && start >= 0:
			fields, start = append(fields, line[start:i]), -1
		case !space && start < 0:
			start = i
		}
	}
	if start >= 0 {
		fields = append(fields, line[start:])
	}
	return fields
}

// moduleNameIs reports whether the module file path p (of modules.dep
// or modules.builtin) is module mod, a name with '_' for '-':
// moduleName(p) == mod without making the string.
func moduleNameIs(p []byte, mod string) bool {
	base := p[bytes.LastIndexByte(p, '/')+1:]
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if b, ok := bytes.CutSuffix(base, []byte(ext)); ok {
			base = b
			break
		}
	}
	return len(base) == len(mod) && sameUnderscore(base, mod)
}

// literalPrefixOf reports whether the alias pattern's literal start —
// up to its first wildcard, bracket or escape — begins want (an
// aliasNormalize'd name), '-' and '_' alike: the pattern can match want
// only then.
func literalPrefixOf(pattern []byte, want string) bool {
	n := bytes.IndexAny(pattern, `*?[\`)
	if n < 0 {
		n = len(pattern)
	}
	return n <= len(want) && sameUnderscore(pattern[:n], want[:n])
}

// sameUnderscore reports whether b and s, of one length, are equal with
// '-' taken for '_'.
func sameUnderscore(b []byte, s string) bool {
	under := func(c byte) byte {
		if c == '-' {
			return '_'
		}
		return c
	}
	for i, c := range b {
		if under(c) != under(s[i]) {
			return false
		}
	}
	return true
}

// refuseEarly answers a request whose every name the index lacks
// (resolvable), before the index is read into memory: quietly with -q,
// as the kernel asks, else naming each in the kernel log. It leaves
// anything else — a name the index has, an index it cannot read — to
// the full path.
func refuseEarly(root string, names []string, quiet bool) (refused bool, status int) {
	dir, err := modDir(root)
	if err != nil {
		return false, 0
	}
	for _, n := range names {
		if found, err := resolvable(dir, n); found || err != nil {
			return false, 0
		}
	}
	if !quiet {
		for _, n := range names {
			kmsg(3, "berth modprobe %s: module %s: %v (not in %s nor an alias there)", n, n, fs.ErrNotExist, dir)
		}
	}
	return true, 1
}
