package boot

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/BurntSushi/toml"
)

// FuzzParseConfig checks, for any bytes: ParseConfig does not panic; an
// accepted config, written out again, is accepted again; an error is a
// join of located *ConfigErrors of the file, bounded in number and length;
// and the scanner agrees with the TOML library on what it could read.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(validConfig))
	f.Add([]byte(oneContainer + "[[container.mount]]\ntype = \"tmpfs\"\ntarget = \"/t\"\n"))
	f.Add([]byte("a = [{b = \"\"\"x\ny\"\"\"}, {c = 'd'}]\n[t.\"q k\"]\nd = 1979-05-27 07:32:00Z\n"))
	files, _ := filepath.Glob("testdata/configs/*.toml")
	pending, _ := filepath.Glob("testdata/configs/pending/*.toml")
	for _, name := range append(files, pending...) {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	for _, sh := range configShapes {
		f.Add([]byte(sh.gen(300)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("f.toml", data)
		if err != nil {
			checkFuzzError(t, data, err)
		} else {
			checkReparse(t, cfg)
		}
		checkScanAgrees(t, string(data))
	})
}

// checkFuzzError checks that err is made of located, bounded errors.
func checkFuzzError(t *testing.T, data []byte, err error) {
	lines := bytes.Count(data, []byte("\n")) + 1
	for _, e := range configErrors(t, "f.toml", err) {
		if e.Line < 0 || e.Line > lines || e.Msg == "" {
			t.Errorf("error %q: line %d of %d lines, or no message", e, e.Line, lines)
		}
		if n := len(e.Error()); n > len("f.toml:")+12+maxKeyShow+4+maxMessage+32 {
			t.Errorf("error of %d bytes: %.200q", n, e)
		}
	}
}

// checkReparse writes an accepted config out (keys at their zero value
// left out, as if absent) and checks it is accepted again, the same.
func checkReparse(t *testing.T, cfg *Config) {
	var out bytes.Buffer
	if err := toml.NewEncoder(&out).Encode(cfg); err != nil {
		t.Fatalf("encode accepted config: %v", err)
	}
	var doc map[string]any
	if _, err := toml.Decode(out.String(), &doc); err != nil {
		t.Fatalf("decode encoded config: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := toml.NewEncoder(&out).Encode(dropZero(doc)); err != nil {
		t.Fatalf("encode: %v", err)
	}
	again, err := ParseConfig("f.toml", out.Bytes())
	if err != nil {
		t.Fatalf("accepted config, written out, is refused: %v\n%s", err, out.String())
	}
	if again.Hostname != cfg.Hostname || len(again.Container) != len(cfg.Container) {
		t.Fatalf("config changed when written out:\n%s", out.String())
	}
	for i := range cfg.Container {
		if again.Container[i].Name != cfg.Container[i].Name || again.Container[i].Image != cfg.Container[i].Image {
			t.Fatalf("container %d changed when written out:\n%s", i, out.String())
		}
	}
}

// dropZero removes zero numbers, empty strings, arrays and tables: keys
// whose absence means the same.
func dropZero(v map[string]any) map[string]any {
	for k, x := range v {
		switch x := x.(type) {
		case map[string]any:
			if len(dropZero(x)) == 0 {
				delete(v, k)
			}
		case []map[string]any:
			for _, m := range x {
				dropZero(m)
			}
		case string:
			if x == "" {
				delete(v, k)
			}
		case int64:
			if x == 0 {
				delete(v, k)
			}
		case float64:
			if x == 0 {
				delete(v, k)
			}
		case []any:
			if len(x) == 0 {
				delete(v, k)
			}
		}
	}
	return v
}

// checkScanAgrees checks the scanner against the TOML library: on a file
// the library reads, the scanner must read every key, in the library's
// order; a string or header the scanner finds unclosed must be an error.
func checkScanAgrees(t *testing.T, src string) {
	scan := scanConfig(src)
	if scan.limit != nil {
		return
	}
	var doc map[string]any
	md, err := decode(src, &doc)
	if err != nil {
		return
	}
	if scan.open != nil || scan.stopped {
		t.Fatalf("the library reads the file, the scanner stops at line %d (%v): %q", scan.stopLine, scan.open, src)
	}
	keys := md.Keys()
	if len(keys) != len(scan.keys) {
		t.Fatalf("the library has %d keys, the scanner %d: %q\n%v\n%v", len(keys), len(scan.keys), src, keys, scan.keys)
	}
	for i, k := range keys {
		if !samePlain(scan.keys[i], k.String()) {
			t.Fatalf("key %d: library %q, scanner %q: %q", i, k.String(), scan.keys[i], src)
		}
	}
}
