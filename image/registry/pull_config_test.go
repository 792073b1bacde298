package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"berth/image"
	"berth/image/registry"
	"berth/image/registry/registrytest"
)

// TestPullCachedConfigIsTheImages: a signed berth image in the cache, its
// tag then moved by the registry to a manifest with the same signed layer
// and another config (an Entrypoint that runs what the attacker wants):
// the next pull takes the config the signed file carries, which the
// cache kept, not the registry's. Before, the cached pull took the
// registry's config; only a first pull read the file's.
func TestPullCachedConfigIsTheImages(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := context.Background()
	dir := t.TempDir()
	key, pub, err := image.Keygen(filepath.Join(dir, "fleet"))
	if err != nil {
		t.Fatal(err)
	}
	img := registrytest.PackImage(t, registrytest.MakeTree(t, "cfg"))
	if _, err := image.Sign(img, key, "", ""); err != nil {
		t.Fatal(err)
	}
	ref := "docker://" + reg.Host + "/c/signed:v1"
	if _, err := registry.Push(ctx, img, ref, registry.PushOptions{Registries: reg.Regs, Signature: img + ".sig"}); err != nil {
		t.Fatal(err)
	}
	cache := newCache(t)
	opts := registry.Options{Registries: reg.Regs, PublicKey: pub}
	first, err := registry.Pull(ctx, cache, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	first.Release()
	// The registry moves the tag: same layer, a config of its own.
	hostile := []byte(`{"architecture":"` + runtime.GOARCH + `","os":"linux","config":{"Entrypoint":["/bin/sh","-c","echo pwned"],"Env":["LD_PRELOAD=/tmp/x.so"]},"rootfs":{"type":"layers","diff_ids":[]}}`)
	base := "http://" + reg.Host + "/v2/c/signed/"
	cfgDigest := uploadBlob(t, base, hostile)
	req, _ := http.NewRequest("GET", base+"manifests/v1", nil)
	req.Header.Set("Accept", registry.MediaOCIManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var m map[string]any
	if err := json.Unmarshal(orig, &m); err != nil {
		t.Fatal(err)
	}
	m["config"].(map[string]any)["digest"], m["config"].(map[string]any)["size"] = cfgDigest, len(hostile)
	body, _ := json.Marshal(m)
	putManifest(t, base+"manifests/v1", body)
	// The signature, the layer's, served again for the new manifest.
	sig := getManifest(t, base+"manifests/"+sigTag(orig))
	putManifest(t, base+"manifests/"+sigTag(body), sig)
	again, err := registry.Pull(ctx, cache, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	again.Release()
	if !again.Cached || slices.Contains(again.Config.Entrypoint, "echo pwned") || len(again.Config.Env) != len(first.Config.Env) {
		t.Errorf("the cached pull (cached %v) took the registry's config: %+v; the image's is %+v", again.Cached, again.Config, first.Config)
	}
}

// uploadBlob puts data in the repository at base (monolithic upload) and
// returns its digest.
func uploadBlob(t *testing.T, base string, data []byte) string {
	t.Helper()
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	resp, err := http.Post(base+"blobs/uploads/", "application/octet-stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	sep := "?"
	if bytes.ContainsRune([]byte(loc), '?') {
		sep = "&"
	}
	if loc[0] == '/' {
		loc = "http://" + resp.Request.URL.Host + loc
	}
	req, _ := http.NewRequest("PUT", fmt.Sprintf("%s%sdigest=%s", loc, sep, digest), bytes.NewReader(data))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %v %v", err, resp)
	}
	resp.Body.Close()
	return digest
}

// sigTag is the tag of the signature of the manifest m.
func sigTag(m []byte) string {
	sum := sha256.Sum256(m)
	return "sha256-" + hex.EncodeToString(sum[:]) + ".sig"
}

func getManifest(t *testing.T, url string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", registry.MediaOCIManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("get %s: %v %v", url, err, resp)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func putManifest(t *testing.T, url string, body []byte) {
	t.Helper()
	req, _ := http.NewRequest("PUT", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", registry.MediaOCIManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("put %s: %v %v", url, err, resp)
	}
	resp.Body.Close()
}
