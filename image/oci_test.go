package image

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const (
	dirT  = tar.TypeDir
	regT  = tar.TypeReg
	symT  = tar.TypeSymlink
	linkT = tar.TypeLink
)

// TestLayers applies layers with whiteouts, opaque directories and
// replacements, in every compression, and compares the tree. Pack of the
// layout must give the same tree.
func TestLayers(t *testing.T) {
	base := []entry{
		{name: "etc/", typ: dirT}, {name: "etc/keep", typ: regT, data: "keep"},
		{name: "etc/gone", typ: regT, data: "gone"}, {name: "etc/old/", typ: dirT},
		{name: "etc/old/a", typ: regT, data: "a"}, {name: "opq/", typ: dirT}, {name: "opq/lower", typ: regT, data: "l"},
		{name: "file", typ: regT, data: "v1"}, {name: "swap", typ: dirT}, {name: "swap/in", typ: regT, data: "in"},
		{name: "data", typ: regT, data: "shared"}, {name: "hl", typ: linkT, link: "data"},
	}
	cases := []struct {
		name   string
		layers [][]entry
		want   map[string]string
	}{
		{"one layer", [][]entry{base}, map[string]string{
			"etc": "dir", "etc/keep": "file keep", "etc/gone": "file gone", "etc/old": "dir", "etc/old/a": "file a",
			"opq": "dir", "opq/lower": "file l", "file": "file v1", "swap": "dir", "swap/in": "file in",
			"data": "file shared", "hl": "file shared"}},
		{"whiteouts, opaque, replacements", [][]entry{base, {
			{name: "etc/.wh.gone", typ: regT}, {name: "etc/.wh.old", typ: regT},
			{name: "opq/.wh..wh..opq", typ: regT}, {name: "opq/upper", typ: regT, data: "u"},
			{name: "file", typ: regT, data: "v2"}, {name: "swap", typ: regT, data: "now a file"},
			{name: "data", typ: regT, data: "replaced"}, // hl keeps what it linked to
		}}, map[string]string{
			"etc": "dir", "etc/keep": "file keep", "opq": "dir", "opq/upper": "file u", "file": "file v2",
			"swap": "file now a file", "data": "file replaced", "hl": "file shared"}},
		{"deleted then recreated in a later layer", [][]entry{base, {{name: ".wh.etc", typ: regT}}, {
			{name: "etc/", typ: dirT}, {name: "etc/new", typ: regT, data: "n"}}}, map[string]string{
			"etc": "dir", "etc/new": "file n", "opq": "dir", "opq/lower": "file l", "file": "file v1",
			"swap": "dir", "swap/in": "file in", "data": "file shared", "hl": "file shared"}},
		{"hardlink before its target in tree order", [][]entry{{{name: "z/", typ: dirT}, {name: "z/t", typ: regT, data: "data"},
			{name: "a/", typ: dirT}, {name: "a/l", typ: linkT, link: "z/t"}, {name: "a/m", typ: linkT, link: "z/t"}}},
			map[string]string{"z": "dir", "z/t": "file data", "a": "dir", "a/l": "file data", "a/m": "file data"}},
		{"whiteout of a missing name, and of the same layer's entry", [][]entry{{
			{name: "a", typ: regT, data: "a"}, {name: ".wh.a", typ: regT}, {name: ".wh.nothing", typ: regT}}},
			map[string]string{"a": "file a"}},
	}
	for _, c := range cases {
		for _, comp := range []string{"", "gzip", "zstd"} {
			t.Run(c.name+"/"+comp, func(t *testing.T) {
				dir := t.TempDir()
				layout := filepath.Join(dir, "layout")
				writeLayout(t, layout, []testImage{{ref: "t", layers: c.layers, compress: comp}}, false)
				dest := filepath.Join(dir, "dest")
				st, err := Unpack(layout, dest, UnpackOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if st.Format != FormatOCI || st.Layers != len(c.layers) {
					t.Errorf("stats %+v", st)
				}
				compareLists(t, c.want, listTree(t, dest))
				img := filepath.Join(dir, "img")
				if err := Pack(layout, img, PackOptions{}); err != nil {
					t.Fatal(err)
				}
				if _, err := Unpack(img, filepath.Join(dir, "dest2"), UnpackOptions{}); err != nil {
					t.Fatal(err)
				}
				compareLists(t, c.want, listTree(t, filepath.Join(dir, "dest2")))
			})
		}
	}
}

// compareLists reports differences between two listTree results.
func compareLists(t *testing.T, want, got map[string]string) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("%s: got %q, want %q", k, got[k], want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected %q", k, got[k])
		}
	}
}

// TestHostileLayers are layers that try to reach outside DEST, through
// whiteouts or otherwise: refused, or harmless, and nothing outside is
// touched.
func TestHostileLayers(t *testing.T) {
	cases := []struct {
		name   string
		layers [][]entry
		err    string // "" when the image is fine
	}{
		{"whiteout of ..", [][]entry{{{name: "a/", typ: dirT}}, {{name: "a/.wh..", typ: regT}}}, "names no entry"},
		{"whiteout with ..", [][]entry{{{name: "a/", typ: dirT}}, {{name: "../.wh.sentinel", typ: regT}}}, `".."`},
		{"absolute whiteout", [][]entry{{{name: "a/", typ: dirT}}, {{name: "/SENTINEL/.wh.x", typ: regT}}}, "absolute"},
		{"whiteout through a symlink", [][]entry{{{name: "l", typ: symT, link: "SENTINEL"}},
			{{name: "l/.wh.x", typ: regT}, {name: "l/.wh..wh..opq", typ: regT}}}, ""},
		{"whiteout through a relative symlink", [][]entry{{{name: "l", typ: symT, link: "../.."}},
			{{name: "l/.wh.sentinel", typ: regT}}}, ""},
		{"file through a symlink of a lower layer", [][]entry{{{name: "l", typ: symT, link: "SENTINEL"}},
			{{name: "l/x", typ: regT, data: "x"}}}, ""}, // a later layer turns l into a directory
		{"hardlink to outside", [][]entry{{{name: "h", typ: linkT, link: "../outside"}}}, `".."`},
		{"hardlink to a missing file", [][]entry{{{name: "h", typ: linkT, link: "nothing"}}}, "not in this layer"},
		{"root as a file", [][]entry{{{name: ".", typ: regT}}}, "root entry"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			sentinel := filepath.Join(base, "sentinel")
			os.Mkdir(sentinel, 0o755)
			os.WriteFile(filepath.Join(sentinel, "x"), []byte("x"), 0o644)
			os.WriteFile(filepath.Join(base, "outside"), []byte("outside"), 0o644)
			var layers [][]entry
			for _, l := range c.layers {
				var fixed []entry
				for _, e := range l {
					e.name = strings.ReplaceAll(e.name, "SENTINEL", sentinel)
					e.link = strings.ReplaceAll(e.link, "SENTINEL", sentinel)
					fixed = append(fixed, e)
				}
				layers = append(layers, fixed)
			}
			layout := filepath.Join(base, "layout")
			writeLayout(t, layout, []testImage{{ref: "t", layers: layers}}, false)
			dest := filepath.Join(base, "dest")
			_, err := Unpack(layout, dest, UnpackOptions{})
			if c.err == "" && err != nil {
				t.Fatal(err)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("error %v, want one with %q", err, c.err)
			}
			if c.err != "" {
				if _, err := os.Stat(dest); err == nil {
					t.Error("dest was created: the first pass must refuse before writing")
				}
			}
			if b, err := os.ReadFile(filepath.Join(sentinel, "x")); err != nil || string(b) != "x" {
				t.Errorf("sentinel/x changed: %q %v", b, err)
			}
			if ents, _ := os.ReadDir(sentinel); len(ents) != 1 {
				t.Errorf("sentinel holds %d entries", len(ents))
			}
			if b, _ := os.ReadFile(filepath.Join(base, "outside")); string(b) != "outside" {
				t.Error("outside changed")
			}
		})
	}
}

// TestLayoutSelection picks images by platform and ref, and refuses what
// is ambiguous or missing, naming what there is.
func TestLayoutSelection(t *testing.T) {
	dir := t.TempDir()
	one := func(s string) [][]entry { return [][]entry{{{name: "which", typ: regT, data: s}}} }
	multi := filepath.Join(dir, "multi")
	writeLayout(t, multi, []testImage{{ref: "m", arch: "amd64", layers: one("amd64")},
		{ref: "m", arch: "arm64", layers: one("arm64")}, {ref: "m", arch: "arm", layers: one("arm")}}, true)
	refs := filepath.Join(dir, "refs")
	writeLayout(t, refs, []testImage{{ref: "a", layers: one("a")}, {ref: "b", layers: one("b")}}, false)
	cases := []struct {
		src, platform, want, err string
	}{
		{multi, "linux/amd64", "amd64", ""},
		{multi, "linux/arm64", "arm64", ""},
		{multi, "linux/arm/v7", "arm", ""},
		{multi, "", runtime.GOARCH, ""},
		{multi + ":m", "arm64", "arm64", ""},
		{multi, "linux/riscv64", "", "no image for linux/riscv64 (the layout has linux/amd64, linux/arm64, linux/arm)"},
		{multi + ":nope", "", "", `no image named "nope"`},
		{refs + ":a", "", "a", ""},
		{refs + ":b", "", "b", ""},
		{refs, "", "", "name one as PATH:REF (refs: a, b)"},
		{multi, "linux/", "", "want OS/ARCH"},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.src)+" "+c.platform, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "d")
			_, err := Unpack(c.src, dest, UnpackOptions{Platform: c.platform})
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(dest, "which")); string(b) != c.want {
				t.Errorf("got image %q, want %q", b, c.want)
			}
		})
	}
}

// TestLayoutTampering changes blobs after the layout was written: every
// change must be refused before anything is written.
func TestLayoutTampering(t *testing.T) {
	layers := [][]entry{{{name: "a", typ: regT, data: strings.Repeat("a", 5000)}}, {{name: "b", typ: regT, data: "b"}}}
	cases := []struct {
		name   string
		tamper func(t *testing.T, layout string, blobs map[string][]byte)
	}{
		{"layer bytes changed", func(t *testing.T, l string, blobs map[string][]byte) {
			for name, b := range blobs {
				if len(b) > 5000 { // the first layer
					b[len(b)/2] ^= 1
					os.WriteFile(filepath.Join(l, "blobs/sha256", name), b, 0o644)
				}
			}
		}},
		{"layer replaced by another valid one", func(t *testing.T, l string, blobs map[string][]byte) {
			other := tarBytes(t, []entry{{name: "evil", typ: regT, data: "x"}})
			for name, b := range blobs {
				if len(b) > 5000 {
					os.WriteFile(filepath.Join(l, "blobs/sha256", name), other, 0o644)
				}
			}
		}},
		{"manifest edited", func(t *testing.T, l string, blobs map[string][]byte) {
			for name, b := range blobs {
				if strings.Contains(string(b), `"layers"`) {
					os.WriteFile(filepath.Join(l, "blobs/sha256", name), []byte(strings.Replace(string(b), "schemaVersion", "schemaversion", 1)), 0o644)
				}
			}
		}},
		{"blob missing", func(t *testing.T, l string, blobs map[string][]byte) {
			for name, b := range blobs {
				if len(b) < 5000 && !strings.HasPrefix(string(b), "{") {
					os.Remove(filepath.Join(l, "blobs/sha256", name))
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			layout := filepath.Join(dir, "layout")
			writeLayout(t, layout, []testImage{{ref: "t", layers: layers}}, false)
			blobs := map[string][]byte{}
			ents, _ := os.ReadDir(filepath.Join(layout, "blobs/sha256"))
			for _, e := range ents {
				blobs[e.Name()], _ = os.ReadFile(filepath.Join(layout, "blobs/sha256", e.Name()))
			}
			c.tamper(t, layout, blobs)
			dest := filepath.Join(dir, "dest")
			_, err := Unpack(layout, dest, UnpackOptions{})
			if err == nil {
				t.Fatal("tampered layout unpacked")
			}
			t.Log(err)
			if strings.Contains(c.name, "changed") || strings.Contains(c.name, "replaced") || strings.Contains(c.name, "edited") {
				if !errors.Is(err, ErrDigestMismatch) {
					t.Errorf("error %v is not a digest mismatch", err)
				}
			}
			if _, err := os.Stat(dest); err == nil {
				t.Error("dest was created before the check")
			}
		})
	}
}

// TestLayoutRefusedAtOpen refuses, when the layout is opened (berth image
// digest, before any unpack), a manifest whose layer blob is missing and
// an index that labels an image with a platform its config denies.
func TestLayoutRefusedAtOpen(t *testing.T) {
	layers := [][]entry{{{name: "a", typ: regT, data: "a"}}}
	cases := []struct {
		name, platform, err string
		tamper              func(t *testing.T, layout string)
	}{
		{"layer blob missing", "", "is not in the layout", func(t *testing.T, l string) {
			ents, _ := os.ReadDir(filepath.Join(l, "blobs/sha256"))
			for _, e := range ents {
				if b, _ := os.ReadFile(filepath.Join(l, "blobs/sha256", e.Name())); !strings.HasPrefix(string(b), "{") {
					os.Remove(filepath.Join(l, "blobs/sha256", e.Name()))
				}
			}
		}},
		{"65 nested indexes", "", "more than 64 nested indexes", func(t *testing.T, l string) {
			rewriteIndex(t, l, func(m any) []any { return slices.Repeat([]any{nestedIndex(t, l, m, 1)}, 65) })
		}},
		{"index bomb: a nested index listed 60 times, listing 300 manifests", "", "more than 16384 manifests and indexes", func(t *testing.T, l string) {
			rewriteIndex(t, l, func(m any) []any { return slices.Repeat([]any{nestedIndex(t, l, m, 300)}, 60) })
		}},
		{"index platform the config denies", "linux/arm64", "config is for linux/amd64, not linux/arm64", func(t *testing.T, l string) {
			b, _ := os.ReadFile(filepath.Join(l, "index.json"))
			os.WriteFile(filepath.Join(l, "index.json"), []byte(strings.Replace(string(b), `"architecture":"amd64"`, `"architecture":"arm64"`, 1)), 0o644)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			layout := filepath.Join(t.TempDir(), "layout")
			writeLayout(t, layout, []testImage{{ref: "t", arch: "amd64", layers: layers}}, false)
			if _, err := Digest(layout, "linux/amd64"); err != nil {
				t.Fatalf("before tampering: %v", err)
			}
			c.tamper(t, layout)
			if _, err := Digest(layout, c.platform); err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("error %v, want %q", err, c.err)
			}
		})
	}
}

// TestLayersDecompressBudget: the layers may decompress to at most twice
// what the image may unpack to (and a slack, lowered here to nothing),
// the data of a replaced entry counted: a small layer that expands to
// much more than is ever written is refused, naming the bound.
func TestLayersDecompressBudget(t *testing.T) {
	old := decompressSlack
	decompressSlack = 0
	defer func() { decompressSlack = old }()
	big := strings.Repeat("z", 1<<20)
	layers := [][]entry{{{name: "a", typ: regT, data: big}}, {{name: "a", typ: regT, data: "small"}}}
	layout := filepath.Join(t.TempDir(), "layout")
	writeLayout(t, layout, []testImage{{ref: "t", arch: runtime.GOARCH, layers: layers, compress: "zstd"}}, false)
	// 1 MiB is written at most (the first "a"), but 2 x 256 KiB is all
	// the layers may decompress to.
	_, err := Unpack(layout, filepath.Join(t.TempDir(), "dest"), UnpackOptions{Limits: Limits{MaxBytes: 256 << 10}})
	if err == nil || !strings.Contains(err.Error(), "the layers decompress to more than 524288 bytes") {
		t.Errorf("unpack: %v", err)
	}
	// With room for both layers' data it unpacks.
	if _, err := Unpack(layout, filepath.Join(t.TempDir(), "dest"), UnpackOptions{Limits: Limits{MaxBytes: 2 << 20}}); err != nil {
		t.Errorf("unpack within the budget: %v", err)
	}
}

// rewriteIndex replaces the manifests of layout l's index.json by what
// list makes of its first one.
func rewriteIndex(t *testing.T, l string, list func(first any) []any) {
	t.Helper()
	var idx map[string]any
	b, _ := os.ReadFile(filepath.Join(l, "index.json"))
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	idx["manifests"] = list(idx["manifests"].([]any)[0])
	b, _ = json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(l, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// nestedIndex writes an index blob listing m n times into layout l and
// returns its descriptor.
func nestedIndex(t *testing.T, l string, m any, n int) any {
	t.Helper()
	sub, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaIndex, "manifests": slices.Repeat([]any{m}, n)})
	sum := sha256.Sum256(sub)
	if err := os.WriteFile(filepath.Join(l, "blobs/sha256", hex.EncodeToString(sum[:])), sub, 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]any{"mediaType": mediaIndex, "digest": "sha256:" + hex.EncodeToString(sum[:]), "size": len(sub)}
}

// TestJSONObjectsBounded: an index.json of more objects than
// MaxJSONObjects is refused before it is decoded (decoded, a 4 MiB one of
// "{}," is 1.4 million descriptors, over 300 MB of heap); one at the
// bound decodes (and is then refused for its count of manifests).
func TestJSONObjectsBounded(t *testing.T) {
	doc := func(n int) []byte { // n objects: the index and n-1 descriptors
		return []byte(`{"manifests":[` + strings.Repeat("{},", n-2) + "{}]}")
	}
	if err := DecodeJSON(doc(MaxJSONObjects), new(ociIndex)); err != nil {
		t.Errorf("%d objects: %v", MaxJSONObjects, err)
	}
	body := doc(MaxJSONObjects + 1)
	if err := DecodeJSON(body, new(ociIndex)); err == nil {
		t.Errorf("%d objects passed", MaxJSONObjects+1)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "index.json"), body, 0o644)
	_, err := Unpack(dir, filepath.Join(t.TempDir(), "dest"), UnpackOptions{})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("index.json: over %d JSON objects", MaxJSONObjects)) {
		t.Errorf("an index.json of %d objects: %v", MaxJSONObjects+1, err)
	}
}
