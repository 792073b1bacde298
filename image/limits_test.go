package image

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestLayerCountBounded: an OCI layout's manifest and a docker save
// archive's manifest.json may list MaxLayers layers (here all the same
// tiny one), which unpack, and not one more, which is refused when the
// image is opened, naming the count and the bound.
func TestLayerCountBounded(t *testing.T) {
	one := [][]entry{{{name: "a", typ: regT, data: "a"}}}
	for _, format := range []string{"oci", "docker"} {
		for _, n := range []int{MaxLayers, MaxLayers + 1} {
			t.Run(fmt.Sprintf("%s %d layers", format, n), func(t *testing.T) {
				src := filepath.Join(t.TempDir(), "image")
				want := fmt.Sprintf("manifest.json: %d layers, at most %d", n, MaxLayers)
				if format == "oci" {
					d := writeLayout(t, src, []testImage{{ref: "t", arch: runtime.GOARCH, layers: slices.Repeat(one, n)}}, false)
					want = fmt.Sprintf("manifest %s: %d layers, at most %d", d["t/"+runtime.GOARCH], n, MaxLayers)
				} else {
					writeDockerDir(t, src, tarBytes(t, one[0]), n, 1)
				}
				stats, err := Unpack(src, filepath.Join(t.TempDir(), "dest"), UnpackOptions{})
				if n <= MaxLayers {
					if err != nil || stats.Layers != n {
						t.Fatalf("unpack: %d layers, %v", stats.Layers, err)
					}
					return
				}
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("unpack: %v, want %q", err, want)
				}
			})
		}
	}
}

// TestDockerImageCountBounded: a docker save archive's manifest.json may
// list maxIndexEntries images, as an OCI layout's indexes, and not one
// more.
func TestDockerImageCountBounded(t *testing.T) {
	raw := tarBytes(t, []entry{{name: "a", typ: regT, data: "a"}})
	for _, n := range []int{maxIndexEntries, maxIndexEntries + 1} {
		src := filepath.Join(t.TempDir(), "image")
		writeDockerDir(t, src, raw, 1, n)
		_, err := Digest(src+":t:0", "")
		want := fmt.Sprintf("manifest.json: %d images, at most %d", n, maxIndexEntries)
		switch {
		case n <= maxIndexEntries && err != nil:
			t.Errorf("%d images: %v", n, err)
		case n > maxIndexEntries && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%d images: %v, want %q", n, err, want)
		}
	}
}

// writeDockerDir writes a docker save archive, unpacked into dir, of
// images images tagged t:0, t:1…, each listing the layer raw layers
// times.
func writeDockerDir(t *testing.T, dir string, raw []byte, layers, images int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "l"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": runtime.GOARCH, "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": slices.Repeat([]string{sha(raw)}, layers)}})
	var man []dockerManifest
	for i := range images {
		man = append(man, dockerManifest{Config: "c.json", RepoTags: []string{fmt.Sprintf("t:%d", i)},
			Layers: slices.Repeat([]string{"l/layer.tar"}, layers)})
	}
	mb, _ := json.Marshal(man)
	for name, b := range map[string][]byte{"c.json": cfg, "manifest.json": mb, "l/layer.tar": raw} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIndexDepthBounded: nested indexes are followed maxIndexDepth
// levels below index.json, and not one more.
func TestIndexDepthBounded(t *testing.T) {
	for _, depth := range []int{maxIndexDepth, maxIndexDepth + 1} {
		layout := filepath.Join(t.TempDir(), "layout")
		writeLayout(t, layout, []testImage{{ref: "t", arch: "amd64", layers: [][]entry{{{name: "a", typ: regT, data: "a"}}}}}, false)
		rewriteIndex(t, layout, func(m any) []any {
			for range depth {
				m = nestedIndex(t, layout, m, 1)
			}
			return []any{m}
		})
		_, err := Digest(layout, "linux/amd64")
		want := fmt.Sprintf("image indexes nested more than %d deep", maxIndexDepth)
		switch {
		case depth <= maxIndexDepth && err != nil:
			t.Errorf("indexes nested %d deep: %v", depth, err)
		case depth > maxIndexDepth && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("indexes nested %d deep: %v, want %q", depth, err, want)
		}
	}
}

// TestDecodeJSONBounds: DecodeJSON takes a document at each of its bounds
// and refuses one just past it, naming the bound; brackets, braces and
// commas inside strings (escaped quotes and backslashes included) are not
// counted.
func TestDecodeJSONBounds(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	values := func(n int) string { return "[" + strings.Repeat("1,", n-2) + "1]" } // the array and n-1 elements
	objects := func(n int) string { return "[" + strings.Repeat("{},", n-1) + "{}]" }
	inString := `"` + strings.Repeat(`[{,\"\\`, MaxJSONValues) + `"`
	cases := []struct{ name, doc, err string }{
		{"depth at the bound", nest(MaxJSONDepth), ""},
		{"depth past it", nest(MaxJSONDepth + 1), fmt.Sprintf("JSON nested %d levels deep, at most %d", MaxJSONDepth+1, MaxJSONDepth)},
		{"nested objects past it", strings.Repeat(`{"a":`, MaxJSONDepth+1) + "1" + strings.Repeat("}", MaxJSONDepth+1), "levels deep"},
		{"values at the bound", values(MaxJSONValues), ""},
		{"values past it", values(MaxJSONValues + 1), fmt.Sprintf("over %d JSON values, array elements and object members (%d)", MaxJSONValues, MaxJSONValues+1)},
		{"objects at the bound", objects(MaxJSONObjects), ""},
		{"objects past it", objects(MaxJSONObjects + 1), fmt.Sprintf("over %d JSON objects (%d)", MaxJSONObjects, MaxJSONObjects+1)},
		{"brackets and commas in a string", "[" + inString + "," + nest(MaxJSONDepth-1) + "]", ""},
		{"an escaped backslash ends no string", `["\\",` + nest(MaxJSONDepth) + "]", "levels deep"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var v any
			err := DecodeJSON([]byte(c.doc), &v)
			if c.err == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("error %v, want %q", err, c.err)
			}
		})
	}
}

// TestJSONValuesBoundedInLayout: an index.json of one array of more than
// MaxJSONValues numbers (few objects) is refused, the error naming the
// file and the bound.
func TestJSONValuesBoundedInLayout(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"manifests":[`+strings.Repeat("1,", MaxJSONValues)+"1]}"), 0o644)
	_, err := Unpack(dir, filepath.Join(t.TempDir(), "dest"), UnpackOptions{})
	if want := fmt.Sprintf("index.json: over %d JSON values", MaxJSONValues); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("unpack: %v, want %q", err, want)
	}
}
