package image

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeJSON measures arbitrary bytes with scanJSON and decodes them
// with DecodeJSON: no panic; for valid JSON the shape is exactly what
// encoding/json's tokenizer sees (so strings are skipped exactly, escapes
// included), and DecodeJSON refuses the document exactly when the shape
// passes a bound.
func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{"manifests":[{"digest":"sha256:0","size":1,"annotations":{"a":"[{,"}}]}`))
	f.Add([]byte(`["\\",[[1,2],{}],"\"[",[]]`))
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`))
	f.Add([]byte(`"\u005b" `))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := scanJSON(b)
		// Into a RawMessage: valid JSON then fails for the bounds alone,
		// not for a number a float64 cannot hold (1E700).
		var v json.RawMessage
		err := DecodeJSON(b, &v)
		if !json.Valid(b) {
			if err == nil {
				t.Fatalf("decoded invalid JSON %q", b)
			}
			return
		}
		if want := tokenShape(t, b); s != want {
			t.Fatalf("scanJSON %+v, the tokenizer %+v, of %q", s, want, b)
		}
		over := s.objects > MaxJSONObjects || s.values > MaxJSONValues || s.depth > MaxJSONDepth
		if over != (err != nil) {
			t.Fatalf("shape %+v, DecodeJSON: %v", s, err)
		}
	})
}

// tokenShape is b's jsonShape as encoding/json's tokenizer sees it: the
// values (one more per empty array or object, as scanJSON counts them),
// the objects and the deepest nesting. b must be valid JSON.
func tokenShape(t *testing.T, b []byte) jsonShape {
	type open struct{ object, wantKey, empty bool }
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var s jsonShape
	var stack []open
	afterValue := func() { // the enclosing object's next token is a key
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			break // io.EOF: b is valid
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			if stack[len(stack)-1].empty {
				s.values++
			}
			stack = stack[:len(stack)-1]
			afterValue()
			continue
		}
		if n := len(stack); n > 0 {
			stack[n-1].empty = false
			if stack[n-1].wantKey {
				stack[n-1].wantKey = false
				continue // a key is no value
			}
		}
		s.values++
		if d, ok := tok.(json.Delim); ok {
			s.objects += btoi(d == '{')
			stack = append(stack, open{object: d == '{', wantKey: d == '{', empty: true})
			s.depth = max(s.depth, len(stack))
			continue
		}
		afterValue()
	}
	return s
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
