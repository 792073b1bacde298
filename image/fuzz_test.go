package image

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"berth/mmapfs"
)

// Fuzz targets, run briefly by `make test`:
//
//	go test ./image/ -run '^$' -fuzz FuzzIndex -fuzztime 10s
//	go test ./image/ -run '^$' -fuzz FuzzUnpackTar -fuzztime 10s
//	go test ./image/ -run '^$' -fuzz FuzzOCIManifest -fuzztime 10s
//
// Their committed corpora are in testdata/fuzz/; a plain `go test` runs
// every corpus entry once.

// FuzzIndex parses index payloads: no panic, and what parses re-encodes to
// the same index and can be walked.
func FuzzIndex(f *testing.F) {
	ix, err := mmapfs.BuildIndex([]mmapfs.IndexItem{
		{Path: "usr/bin/env", Entry: mmapfs.Entry{Type: mmapfs.TypeReg, Mode: 0o755, Size: 3}},
		{Path: "bin", Entry: mmapfs.Entry{Type: mmapfs.TypeSymlink, Link: "usr/bin"}},
		{Path: "dev/null", Entry: mmapfs.Entry{Type: mmapfs.TypeChar, Devmajor: 1, Devminor: 3}},
	}, 100)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mmapfs.AppendIndexFrame(nil, ix)[8:])
	f.Add([]byte("BRTI"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := mmapfs.ParseIndex(b)
		if err != nil {
			return
		}
		again, err := mmapfs.ParseIndex(mmapfs.AppendIndexFrame(nil, ix)[8:])
		if err != nil || len(again.Entries) != len(ix.Entries) {
			t.Fatalf("re-encoded index: %v", err)
		}
		for i, e := range ix.Entries {
			if e.Type == mmapfs.TypeDir {
				lo, hi := ix.Children(i)
				for j := lo; j < hi; j++ {
					if ix.Lookup(i, ix.Entries[j].Name) != j {
						t.Fatalf("lookup of child %d of %d", j, i)
					}
				}
			}
			_ = ix.Path(i)
		}
	})
}

// FuzzUnpackTar unpacks arbitrary bytes as a tar, plain or framed as a
// berth image: no panic, and nothing is written outside DEST.
func FuzzUnpackTar(f *testing.F) {
	f.Add(tarBytes(f, []entry{{name: "a/", typ: dirT}, {name: "a/b", typ: regT, data: "b"}, {name: "l", typ: symT, link: "a"}}), true)
	f.Add(tarBytes(f, []entry{{name: "l", typ: symT, link: "../sentinel"}, {name: "l/x", typ: regT, data: "x"}}), false)
	f.Add(tarBytes(f, []entry{{name: "h", typ: linkT, link: "../outside"}}), true)
	f.Add(tarBytes(f, []entry{{name: "d/", typ: dirT}, {name: "d", typ: regT, data: "x"}, {name: "d/x", typ: regT}}), true)
	f.Fuzz(func(t *testing.T, b []byte, framed bool) {
		base := t.TempDir()
		sentinel := filepath.Join(base, "sentinel")
		os.Mkdir(sentinel, 0o755)
		os.WriteFile(filepath.Join(base, "outside"), []byte("outside"), 0o644)
		if framed && len(b) > 0 {
			b = berthFromTar(t, b, 300)
		}
		src := filepath.Join(base, "in")
		os.WriteFile(src, b, 0o644)
		lim := Limits{MaxEntries: 200, MaxBytes: 1 << 20, MaxWindow: 1 << 20, MaxFrameBytes: 1 << 20}
		Unpack(src, filepath.Join(base, "dest"), UnpackOptions{Limits: lim, Workers: 2, Writers: 2})
		if ents, _ := os.ReadDir(sentinel); len(ents) != 0 {
			t.Fatal("written into the sentinel outside DEST")
		}
		if got, _ := os.ReadFile(filepath.Join(base, "outside")); string(got) != "outside" {
			t.Fatal("file outside DEST changed")
		}
		ents, _ := os.ReadDir(base)
		for _, e := range ents {
			if n := e.Name(); n != "sentinel" && n != "outside" && n != "in" && n != "dest" {
				t.Fatalf("%s written beside DEST", n)
			}
		}
	})
}

// FuzzOCIManifest resolves layouts whose index.json, manifest and config
// are arbitrary JSON (the blobs named by digest, so they are reachable):
// no panic, and an accepted layout names layers by valid digests.
func FuzzOCIManifest(f *testing.F) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:` + string(bytes.Repeat([]byte("a"), 64)) + `"]}}`)
	man := []byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + sha(cfg) + `","size":` + itoa(len(cfg)) + `},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:` + string(bytes.Repeat([]byte("b"), 64)) + `","size":1}]}`)
	idx := []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + sha(man) + `","size":` + itoa(len(man)) + `,"annotations":{"org.opencontainers.image.ref.name":"t"}}]}`)
	f.Add(idx, man, cfg, "")
	f.Add([]byte(`{"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"`+sha(idx)+`","size":1}]}`), idx, cfg, "linux/arm64")
	f.Add([]byte(`[{"Config":"c.json","RepoTags":["a:b"],"Layers":["l/layer.tar"]}]`), man, cfg, "docker")
	f.Fuzz(func(t *testing.T, index, manifest, config []byte, platform string) {
		dir := t.TempDir()
		blobs := filepath.Join(dir, "blobs", "sha256")
		os.MkdirAll(blobs, 0o755)
		for _, b := range [][]byte{index, manifest, config} {
			os.WriteFile(filepath.Join(blobs, sha(b)[7:]), b, 0o644)
		}
		if platform == "docker" {
			os.WriteFile(filepath.Join(dir, "manifest.json"), index, 0o644)
			os.WriteFile(filepath.Join(dir, "c.json"), config, 0o644)
			platform = ""
		} else {
			os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
			os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644)
		}
		in, err := openInput(dir, platform, Limits{}.withDefaults())
		if err != nil {
			return
		}
		defer in.close()
		if checkDigestSyntax(in.digest) != nil {
			t.Fatalf("accepted image digest %q", in.digest)
		}
		for _, l := range in.layers {
			if checkDigestSyntax(l.diffID) != nil || (l.digest != "" && checkDigestSyntax(l.digest) != nil) {
				t.Fatalf("accepted layer %+v", l)
			}
		}
		json.Valid(index)
	})
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
