package boot

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"berth/container"
)

// The TOML library stops at the first value of the wrong type. berth check
// reports every problem at once, so the file is first decoded into plain
// maps and every value is checked against the type of its Config field;
// only a file without type errors is then decoded into a Config.

var (
	unmarshalerType = reflect.TypeOf((*toml.Unmarshaler)(nil)).Elem()
	groupIDType     = reflect.TypeFor[groupID]()
)

// typeErrors checks the decoded document against Config's fields and
// returns an error per mistyped value, located by pos. Unknown keys are
// left to the decoder's Undecoded list.
func typeErrors(path string, doc map[string]any, pos *keyPositions) []error {
	tc := &typeCheck{file: path, pos: pos}
	tc.table("", doc, reflect.TypeOf(Config{}))
	return tc.errs
}

type typeCheck struct {
	file string
	pos  *keyPositions
	errs []error
}

func (tc *typeCheck) add(indexed, msg string) {
	tc.errs = append(tc.errs, &ConfigError{File: tc.file, Line: tc.pos.line(indexed), Key: plainKey(indexed), Msg: msg})
}

// table checks the keys of a TOML table against struct type t.
func (tc *typeCheck) table(prefix string, m map[string]any, t reflect.Type) {
	fields := map[string]reflect.Type{}
	collectFields(t, fields)
	for k, v := range m {
		ft, ok := fields[k]
		if !ok {
			continue // an unknown key: reported by the decoder
		}
		key := toml.Key{k}.String() // quoted when it holds a dot
		if prefix != "" {
			key = prefix + "." + key
		}
		tc.value(key, v, ft)
	}
}

// collectFields maps the toml keys of struct t, embedded structs included,
// to their types.
func collectFields(t reflect.Type, out map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			collectFields(f.Type, out)
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("toml"), ","); name != "" && name != "-" {
			out[name] = f.Type
		}
	}
}

// value checks one value against type t and reports a mismatch at key.
func (tc *typeCheck) value(key string, v any, t reflect.Type) {
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if err := reflect.New(t).Interface().(toml.Unmarshaler).UnmarshalTOML(v); err != nil {
			tc.add(key, err.Error())
		}
		return
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		tc.want(key, v, "a string", func() bool { _, ok := v.(string); return ok })
	case reflect.Bool:
		tc.want(key, v, "true or false", func() bool { _, ok := v.(bool); return ok })
	case reflect.Float64:
		tc.want(key, v, "a number", func() bool {
			switch v.(type) {
			case float64, int64:
				return true
			}
			return false
		})
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64:
		tc.integer(key, v, t)
	case reflect.Slice:
		tc.array(key, v, t)
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			tc.add(key, "want a table, got "+tomlType(v))
			return
		}
		tc.table(key, m, t)
	case reflect.Map:
		tc.want(key, v, "a table", func() bool { _, ok := v.(map[string]any); return ok })
	}
}

func (tc *typeCheck) want(key string, v any, what string, ok func() bool) {
	if !ok() {
		tc.add(key, "want "+what+", got "+tomlType(v))
	}
}

// integer checks an integer value against the range of t.
func (tc *typeCheck) integer(key string, v any, t reflect.Type) {
	n, ok := v.(int64)
	if !ok {
		tc.add(key, "want an integer, got "+tomlType(v))
		return
	}
	if t == groupIDType {
		// What a uint32 can hold; 4294967295 is Validate's to refuse,
		// in the same words.
		if n < 0 || n > math.MaxUint32 {
			tc.add(key, fmt.Sprintf("%d: ids go from 0 to %d", n, container.MaxID))
		}
		return
	}
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	switch t.Kind() {
	case reflect.Uint32:
		lo, hi = 0, math.MaxUint32
	case reflect.Uint64:
		lo = 0
	case reflect.Int:
		lo, hi = math.MinInt32, math.MaxInt32 // as on 32-bit boards
	}
	// One bound, the one passed: a key's own floor (max_restarts' 0, a
	// weight's 1) is its check's to state, in its words.
	switch {
	case n > hi:
		tc.add(key, fmt.Sprintf("%d is out of range: at most %d", n, hi))
	case n < lo && lo == 0:
		tc.add(key, fmt.Sprintf("%d is out of range: it may not be negative", n))
	case n < lo:
		tc.add(key, fmt.Sprintf("%d is out of range: at least %d", n, lo))
	}
}

// array checks an array (of values, or of tables for a slice of structs).
func (tc *typeCheck) array(key string, v any, t reflect.Type) {
	elem := t.Elem()
	var items []any
	switch a := v.(type) {
	case []any:
		items = a
	case []map[string]any:
		for _, m := range a {
			items = append(items, m)
		}
	default:
		tc.add(key, "want an array, got "+tomlType(v))
		return
	}
	for i, item := range items {
		k := key
		if elem.Kind() == reflect.Struct {
			k = key + "#" + strconv.Itoa(i)
		}
		tc.value(k, item, elem)
	}
}
