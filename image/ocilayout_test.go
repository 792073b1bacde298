package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// testImage is an image for writeLayout: layers of entries, compressed as
// named ("", "gzip" or "zstd"), for a platform, under a ref.
type testImage struct {
	ref, arch string
	layers    [][]entry
	raw       [][]byte // more layers, as tar streams, after layers
	compress  string
	config    string // raw JSON of the image config's "config" object
}

// tarBytes writes entries as a tar stream.
func tarBytes(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if e.typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Size: int64(len(e.data))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.data))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// compress compresses b as named.
func compress(t testing.TB, how string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch how {
	case "gzip":
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
	case "zstd":
		zw, _ := zstd.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
	default:
		return b
	}
	return buf.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// putBlob stores b in the layout and returns its descriptor.
func putBlob(t testing.TB, dir, mediaType string, b []byte) descriptor {
	t.Helper()
	d := sha(b)
	p := filepath.Join(dir, "blobs", "sha256", d[7:])
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}
}

// writeLayout writes an OCI image layout holding images; with index set,
// they are grouped in one multi-platform index named by the first ref.
func writeLayout(t testing.TB, dir string, images []testImage, index bool) map[string]string {
	t.Helper()
	digests := map[string]string{}
	var manifests []descriptor
	for _, img := range images {
		var layers []descriptor
		var diffIDs []string
		raws := img.raw
		for i := len(img.layers) - 1; i >= 0; i-- {
			raws = append([][]byte{tarBytes(t, img.layers[i])}, raws...)
		}
		for _, raw := range raws {
			diffIDs = append(diffIDs, sha(raw))
			mt := "application/vnd.oci.image.layer.v1.tar"
			if img.compress != "" {
				mt += "+" + img.compress
			}
			layers = append(layers, putBlob(t, dir, mt, compress(t, img.compress, raw)))
		}
		arch := img.arch
		if arch == "" {
			arch = "amd64"
		}
		cfg, _ := json.Marshal(map[string]any{"architecture": arch, "os": "linux",
			"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
		if img.config != "" { // spliced in as it is: it may be hostile
			cfg = append(append(cfg[:len(cfg)-1], `,"config":`...), img.config+"}"...)
		}
		m, _ := json.Marshal(ociManifest{SchemaVersion: 2, MediaType: mediaManifest,
			Config: putBlob(t, dir, "application/vnd.oci.image.config.v1+json", cfg), Layers: layers})
		d := putBlob(t, dir, mediaManifest, m)
		d.Platform = &Platform{OS: "linux", Architecture: arch}
		if !index {
			d.Annotations = map[string]string{annotationRefName: img.ref}
		}
		digests[img.ref+"/"+arch] = d.Digest
		manifests = append(manifests, d)
	}
	if index {
		b, _ := json.Marshal(ociIndex{SchemaVersion: 2, MediaType: mediaIndex, Manifests: manifests})
		d := putBlob(t, dir, mediaIndex, b)
		d.Annotations = map[string]string{annotationRefName: images[0].ref}
		manifests = []descriptor{d}
	}
	b, _ := json.Marshal(ociIndex{SchemaVersion: 2, Manifests: manifests})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return digests
}

// listTree returns path → type and content of a tree, for OCI tests.
func listTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == ".":
		case info.IsDir():
			out[rel] = "dir"
		case info.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "-> " + l
		default:
			b, _ := os.ReadFile(p)
			out[rel] = "file " + string(b)
		}
		return nil
	})
	return out
}
