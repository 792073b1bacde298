package registry_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"berth/image"
	"berth/image/registry"
	"berth/image/registry/registrytest"
)

// TestPushPullBerth pushes a berth image and pulls it back by tag and by
// digest: the layer is the file byte for byte, the cache entry is keyed by
// the berth digest, and the tree is the packed one.
func TestPushPullBerth(t *testing.T) {
	for _, o := range []struct {
		name string
		opts registrytest.Options
	}{{"http", registrytest.Options{}}, {"tls", registrytest.Options{TLS: true}}, {"basic", registrytest.Options{TLS: true, Basic: true}}} {
		t.Run(o.name, func(t *testing.T) {
			reg := registrytest.Start(t, o.opts)
			tree := registrytest.MakeTree(t, "one")
			img := registrytest.PackImage(t, tree)
			ref := "docker://" + reg.Host + "/berth/demo:v1"
			ctx := context.Background()
			md, err := registry.Push(ctx, img, ref, registry.PushOptions{Registries: reg.Regs})
			if err != nil {
				t.Fatalf("push: %v\n%s", err, reg.Log.String())
			}
			cache, err := image.OpenCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []string{ref, "docker://" + reg.Host + "/berth/demo@" + md} {
				p, err := registry.Pull(ctx, cache, r, registry.Options{Registries: reg.Regs})
				if err != nil {
					t.Fatalf("pull %s: %v", r, err)
				}
				p.Release()
				if p.Digest != md || p.Manifest != md {
					t.Errorf("pull %s: digest %s manifest %s, pushed %s", r, p.Digest, p.Manifest, md)
				}
				if want := registrytest.FileDigest(t, img); p.Prepared.Digest != want {
					t.Errorf("pull %s: cache entry %s, want the berth digest %s", r, p.Prepared.Digest, want)
				}
				if got, want := registrytest.TreeSum(t, p.Rootfs), registrytest.TreeSum(t, tree); got != want {
					t.Errorf("pull %s: tree differs:\n%s\nwant\n%s", r, got, want)
				}
			}
		})
	}
}

// newCache opens a cache in a temporary directory.
func newCache(t *testing.T) *image.Cache {
	t.Helper()
	c, err := image.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPullDockerGzip pulls a docker-format image of two gzip layers
// pushed by skopeo: the layers are applied in order, whiteouts honoured,
// and the cache entry is keyed by the manifest digest.
func TestPullDockerGzip(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	src := registrytest.WriteDockerDir(t, [][]registrytest.Entry{
		{{Name: "etc/", Dir: true}, {Name: "etc/a", Data: "one"}, {Name: "etc/b", Data: "b"}, {Name: "dir/", Dir: true}, {Name: "dir/x", Data: "x"}},
		{{Name: "etc/", Dir: true}, {Name: "etc/.wh.b"}, {Name: "etc/a", Data: "two"}, {Name: "new/", Dir: true}, {Name: "new/c", Data: "c"}, {Name: "new/l", Link: "c"}},
	})
	ref := "docker://" + reg.Host + "/foreign/img:1"
	reg.Skopeo("dir:"+src, ref)
	cache := newCache(t)
	p, err := registry.Pull(context.Background(), cache, ref, registry.Options{Registries: reg.Regs})
	if err != nil {
		t.Fatal(err)
	}
	p.Release()
	if p.Prepared.Digest != p.Manifest {
		t.Errorf("cache entry %s, want the manifest digest %s", p.Prepared.Digest, p.Manifest)
	}
	for name, want := range map[string]string{"etc/a": "two", "dir/x": "x", "new/c": "c"} {
		if b, err := os.ReadFile(filepath.Join(p.Rootfs, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(p.Rootfs, "etc/b")); !os.IsNotExist(err) {
		t.Errorf("etc/b, whited out by layer 1, is there: %v", err)
	}
	if l, _ := os.Readlink(filepath.Join(p.Rootfs, "new/l")); l != "c" {
		t.Errorf("new/l -> %q, want c", l)
	}
	if p.Config.Cmd == nil || p.Config.Cmd[0] != "/bin/sh" {
		t.Errorf("config Cmd %q, want [/bin/sh]", p.Config.Cmd)
	}
	if _, err := os.Stat(filepath.Join(cache.Root, ".pull", strings.TrimPrefix(p.Manifest, "sha256:"))); !os.IsNotExist(err) {
		t.Errorf("the downloads are still there after the pull: %v", err)
	}
}

// TestPullWrongDigest: a digest the registry does not hold, or a manifest
// whose bytes do not hash to the pinned digest, is refused before any
// blob is fetched, and nothing enters the cache.
func TestPullWrongDigest(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	img := registrytest.PackImage(t, registrytest.MakeTree(t, "w"))
	ref := "docker://" + reg.Host + "/berth/w:v1"
	md, err := registry.Push(context.Background(), img, ref, registry.PushOptions{Registries: reg.Regs})
	if err != nil {
		t.Fatal(err)
	}
	proxy := registrytest.StartProxy(t, reg.Host)
	regs := registry.Registries{proxy.Host: {Insecure: true}}
	// A proxy that serves the tag's manifest for any reference: a
	// registry lying about what a digest names.
	wrong := "sha256:" + strings.Repeat("ab", 32)
	cache := newCache(t)
	_, err = registry.Pull(context.Background(), cache, "docker://"+proxy.Host+"/berth/w@"+wrong, registry.Options{Registries: regs})
	if err == nil || !strings.Contains(err.Error(), "manifest unknown") {
		t.Errorf("unknown digest: %v, want the registry's manifest unknown", err)
	}
	lying := registrytest.StartProxy(t, reg.Host)
	lying.Rewrite = func(head string) string { return strings.Replace(head, wrong, "v1", 1) }
	regs[lying.Host] = registry.Settings{Insecure: true}
	_, err = registry.Pull(context.Background(), cache, "docker://"+lying.Host+"/berth/w@"+wrong, registry.Options{Registries: regs})
	if !errors.Is(err, image.ErrDigestMismatch) || !strings.Contains(err.Error(), md) {
		t.Errorf("manifest of another digest: %v, want a digest mismatch naming %s", err, md)
	}
	for _, h := range append(proxy.Heads(), lying.Heads()...) {
		if strings.Contains(h, "/blobs/") {
			t.Errorf("a blob was fetched: %q", h)
		}
	}
	if e := registrytest.CacheEntries(t, cache.Root); len(e) != 0 {
		t.Errorf("cache entries after refused pulls: %v", e)
	}
}

// bigImage packs a tree with 4 MiB of random data, so a layer takes many
// reads.
func bigImage(t *testing.T) (tree, img string) {
	t.Helper()
	tree = registrytest.MakeTree(t, "big")
	b := make([]byte, 4<<20)
	rand.Read(b)
	if err := os.WriteFile(filepath.Join(tree, "random.bin"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return tree, registrytest.PackImage(t, tree)
}

// blobGets returns the heads of GETs of blob d, and those with a Range.
func blobGets(heads []string, d string) (all, ranged []string) {
	for _, h := range heads {
		if strings.HasPrefix(h, "GET ") && strings.Contains(h, "/blobs/"+d) {
			all = append(all, h)
			if strings.Contains(h, "\r\nRange: bytes=") {
				ranged = append(ranged, h)
			}
		}
	}
	return all, ranged
}

// TestPullResume kills the registry in the middle of a layer and starts
// it again: the pull reconnects and goes on from where it was with a
// range request, and the tree is whole.
func TestPullResume(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	tree, img := bigImage(t)
	layer := registrytest.FileDigest(t, img)
	if _, err := registry.Push(context.Background(), img, "docker://"+reg.Host+"/berth/big:v1", registry.PushOptions{Registries: reg.Regs}); err != nil {
		t.Fatal(err)
	}
	proxy := registrytest.StartProxy(t, reg.Host)
	proxy.Cut = func(head string) int64 {
		if all, _ := blobGets([]string{head}, layer); len(all) > 0 && !strings.Contains(head, "Range:") {
			return 1 << 20
		}
		return -1
	}
	regs := registry.Registries{proxy.Host: {Insecure: true}}
	done := make(chan error, 1)
	var p registry.Pulled
	cache := newCache(t)
	go func() {
		var err error
		p, err = registry.Pull(context.Background(), cache, "docker://"+proxy.Host+"/berth/big:v1", registry.Options{Registries: regs})
		done <- err
	}()
	<-proxy.Cuts
	reg.Stop()
	time.Sleep(500 * time.Millisecond) // the pull finds nobody there at least once
	reg.Start()
	if err := <-done; err != nil {
		t.Fatalf("pull: %v", err)
	}
	p.Release()
	if _, ranged := blobGets(proxy.Heads(), layer); len(ranged) == 0 {
		t.Errorf("no range request for the layer; requests:\n%s", strings.Join(proxy.Heads(), ""))
	}
	if got, want := registrytest.TreeSum(t, p.Rootfs), registrytest.TreeSum(t, tree); got != want {
		t.Errorf("tree differs:\n%s\nwant\n%s", got, want)
	}
}

// TestPullResumeAcrossPulls: a registry that does not come back fails the
// pull with nothing in the cache but the partial download, which the next
// pull (another process, say) resumes with a range request.
func TestPullResumeAcrossPulls(t *testing.T) {
	defer registry.SetRetries(2, 10*time.Millisecond)()
	reg := registrytest.Start(t, registrytest.Options{})
	tree, img := bigImage(t)
	layer := registrytest.FileDigest(t, img)
	md, err := registry.Push(context.Background(), img, "docker://"+reg.Host+"/berth/big:v1", registry.PushOptions{Registries: reg.Regs})
	if err != nil {
		t.Fatal(err)
	}
	proxy := registrytest.StartProxy(t, reg.Host)
	cut := true
	proxy.Cut = func(head string) int64 {
		if all, _ := blobGets([]string{head}, layer); len(all) > 0 && cut {
			cut = false
			return 1 << 20
		}
		return -1
	}
	regs := registry.Registries{proxy.Host: {Insecure: true}}
	ref := "docker://" + proxy.Host + "/berth/big:v1"
	cache := newCache(t)
	go func() { <-proxy.Cuts; reg.Stop() }()
	if _, err := registry.Pull(context.Background(), cache, ref, registry.Options{Registries: regs}); err == nil {
		t.Fatal("pull succeeded with the registry gone")
	} else {
		t.Logf("pull with the registry gone: %v", err)
	}
	if e := registrytest.CacheEntries(t, cache.Root); len(e) != 0 {
		t.Errorf("cache entries after a failed pull: %v", e)
	}
	partial := filepath.Join(cache.Root, ".pull", strings.TrimPrefix(md, "sha256:"), "blobs", "sha256", strings.TrimPrefix(layer, "sha256:")+".partial")
	st, err := os.Stat(partial)
	if err != nil || st.Size() == 0 {
		t.Fatalf("no partial download kept: %v", err)
	}
	reg.Start()
	p, err := registry.Pull(context.Background(), cache, ref, registry.Options{Registries: regs})
	if err != nil {
		t.Fatalf("second pull: %v", err)
	}
	p.Release()
	want := fmt.Sprintf("Range: bytes=%d-", st.Size())
	if _, ranged := blobGets(proxy.Heads(), layer); len(ranged) == 0 || !strings.Contains(ranged[len(ranged)-1], want) {
		t.Errorf("the second pull did not resume with %q; range requests: %q", want, ranged)
	}
	if got, want := registrytest.TreeSum(t, p.Rootfs), registrytest.TreeSum(t, tree); got != want {
		t.Errorf("tree differs")
	}
}

// TestPullFailedLeavesNoEmptyTree: a pull that fails before its first
// blob lands (every blob unknown to the registry) leaves no empty
// download tree in the cache; one that failed with a partial download
// keeps it (TestPullResumeAcrossPulls).
func TestPullFailedLeavesNoEmptyTree(t *testing.T) {
	defer registry.SetRetries(2, 10*time.Millisecond)()
	reg := registrytest.Start(t, registrytest.Options{})
	img := registrytest.PackImage(t, registrytest.MakeTree(t, "e"))
	if _, err := registry.Push(context.Background(), img, "docker://"+reg.Host+"/berth/e:v1", registry.PushOptions{Registries: reg.Regs}); err != nil {
		t.Fatal(err)
	}
	proxy := registrytest.StartProxy(t, reg.Host)
	proxy.Rewrite = func(head string) string {
		return strings.Replace(head, "/blobs/sha256:", "/blobs/sha256:"+strings.Repeat("0", 64)+"x", 1)
	}
	cache := newCache(t)
	_, err := registry.Pull(context.Background(), cache, "docker://"+proxy.Host+"/berth/e:v1", registry.Options{Registries: registry.Registries{proxy.Host: {Insecure: true}}})
	if err == nil || !strings.Contains(err.Error(), "config") {
		t.Fatalf("pull with every blob unknown: %v, want the config's error", err)
	}
	if _, err := os.Lstat(filepath.Join(cache.Root, ".pull")); !errors.Is(err, os.ErrNotExist) {
		entries, _ := filepath.Glob(filepath.Join(cache.Root, ".pull", "*", "*", "*", "*"))
		t.Errorf("%s after a pull that downloaded nothing: %v (%v)", filepath.Join(cache.Root, ".pull"), err, entries)
	}
}

// pushV1 pushes img to reg as m/img:v1.
func pushV1(t *testing.T, reg *registrytest.Registry, img string) {
	t.Helper()
	if _, err := registry.Push(context.Background(), img, "docker://"+reg.Host+"/m/img:v1", registry.PushOptions{Registries: reg.Regs}); err != nil {
		t.Fatal(err)
	}
}

// TestPullMirrors: mirrors are asked in order before the host; one that
// is down or lacks the image is passed over.
func TestPullMirrors(t *testing.T) {
	host := registrytest.Start(t, registrytest.Options{})
	mirror := registrytest.Start(t, registrytest.Options{})
	empty := registrytest.Start(t, registrytest.Options{})
	down := fmt.Sprintf("127.0.0.1:%d", registrytest.FreePort(t))
	ctx := context.Background()
	imgA := registrytest.PackImage(t, registrytest.MakeTree(t, "a"))
	imgB := registrytest.PackImage(t, registrytest.MakeTree(t, "b"))
	// The same tag names a different image on the mirror: where it came
	// from shows.
	pushV1(t, host, imgA)
	pushV1(t, mirror, imgB)
	regs := registry.Registries{
		host.Host:   {Insecure: true, Mirrors: []string{down, empty.Host, mirror.Host}},
		mirror.Host: {Insecure: true}, empty.Host: {Insecure: true}, down: {Insecure: true},
	}
	var log strings.Builder
	p, err := registry.Pull(ctx, newCache(t), "docker://"+host.Host+"/m/img:v1", registry.Options{Registries: regs, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	p.Release()
	if p.Host != mirror.Host || p.Prepared.Digest != registrytest.FileDigest(t, imgB) {
		t.Errorf("pulled %s from %s, want %s from the mirror %s", p.Prepared.Digest, p.Host, registrytest.FileDigest(t, imgB), mirror.Host)
	}
	if !strings.Contains(log.String(), "mirror "+down) || !strings.Contains(log.String(), "mirror "+empty.Host) {
		t.Errorf("the log does not name the mirrors passed over:\n%s", log.String())
	}
	regs[host.Host] = registry.Settings{Insecure: true, Mirrors: []string{down, empty.Host}}
	p, err = registry.Pull(ctx, newCache(t), "docker://"+host.Host+"/m/img:v1", registry.Options{Registries: regs})
	if err != nil {
		t.Fatal(err)
	}
	p.Release()
	if p.Host != host.Host || p.Prepared.Digest != registrytest.FileDigest(t, imgA) {
		t.Errorf("pulled from %s, want the host %s once no mirror has it", p.Host, host.Host)
	}
}

// TestPullSignature: with a public key, the signature pushed with the
// image is checked before anything is unpacked; a missing one or one by
// another key refuses the pull.
func TestPullSignature(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := context.Background()
	dir := t.TempDir()
	key, pub, err := image.Keygen(filepath.Join(dir, "fleet"))
	if err != nil {
		t.Fatal(err)
	}
	_, otherPub, _ := image.Keygen(filepath.Join(dir, "other"))
	signedImg := registrytest.PackImage(t, registrytest.MakeTree(t, "s"))
	if _, err := image.Sign(signedImg, key, "", ""); err != nil {
		t.Fatal(err)
	}
	unsigned := registrytest.PackImage(t, registrytest.MakeTree(t, "u"))
	for img, sig := range map[string]string{signedImg: signedImg + ".sig", unsigned: ""} {
		tag := map[bool]string{true: "signed", false: "unsigned"}[sig != ""]
		if _, err := registry.Push(ctx, img, "docker://"+reg.Host+"/s/img:"+tag, registry.PushOptions{Registries: reg.Regs, Signature: sig}); err != nil {
			t.Fatal(err)
		}
	}
	// A signature of another image is refused at push.
	if _, err := registry.Push(ctx, unsigned, "docker://"+reg.Host+"/s/img:x", registry.PushOptions{Registries: reg.Regs, Signature: signedImg + ".sig"}); err == nil {
		t.Error("push with another image's signature succeeded")
	}
	for _, c := range []struct {
		name, tag, pub, err string
	}{
		{"signed", "signed", pub, ""},
		{"unsigned", "unsigned", pub, "no signature"},
		{"other key", "signed", otherPub, "not a valid signature"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache := newCache(t)
			p, err := registry.Pull(ctx, cache, "docker://"+reg.Host+"/s/img:"+c.tag, registry.Options{Registries: reg.Regs, PublicKey: c.pub})
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				p.Release()
				return
			}
			if !errors.Is(err, image.ErrSignature) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("pull: %v, want a signature error with %q", err, c.err)
			}
			if e := registrytest.CacheEntries(t, cache.Root); len(e) != 0 {
				t.Errorf("cache entries after a refused pull: %v", e)
			}
		})
	}
}

// TestPullIndex: from a multi-platform index the platform is picked as
// for OCI layouts; the reference's digest is the index's; a platform the
// index lacks, or a config for another platform, is refused before any
// layer is fetched.
func TestPullIndex(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := context.Background()
	imgs := map[string]string{"amd64": registrytest.PackImage(t, registrytest.MakeTree(t, "amd")), "arm64": registrytest.PackImage(t, registrytest.MakeTree(t, "arm"))}
	var entries []string
	for arch, img := range imgs {
		md, err := registry.Push(ctx, img, "docker://"+reg.Host+"/x/multi:"+arch, registry.PushOptions{Registries: reg.Regs, Platform: "linux/" + arch})
		if err != nil {
			t.Fatal(err)
		}
		size := manifestSize(t, reg.Host, "x/multi", arch)
		entries = append(entries, fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":%d,"platform":{"os":"linux","architecture":%q}}`, registry.MediaOCIManifest, md, size, arch))
	}
	index := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[%s]}`, registry.MediaOCIIndex, strings.Join(entries, ","))
	req, _ := http.NewRequest("PUT", "http://"+reg.Host+"/v2/x/multi/manifests/all", strings.NewReader(index))
	req.Header.Set("Content-Type", registry.MediaOCIIndex)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("put index: %v %v", err, resp)
	}
	sum := sha256.Sum256([]byte(index))
	indexDigest := "sha256:" + hex.EncodeToString(sum[:])
	for _, arch := range []string{"amd64", "arm64"} {
		p, err := registry.Pull(ctx, newCache(t), "docker://"+reg.Host+"/x/multi:all", registry.Options{Registries: reg.Regs, Platform: "linux/" + arch})
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		p.Release()
		if p.Digest != indexDigest || p.Prepared.Digest != registrytest.FileDigest(t, imgs[arch]) {
			t.Errorf("%s: digest %s (want the index's %s), entry %s (want %s's image)", arch, p.Digest, indexDigest, p.Prepared.Digest, arch)
		}
	}
	cache := newCache(t)
	_, err = registry.Pull(ctx, cache, "docker://"+reg.Host+"/x/multi:all", registry.Options{Registries: reg.Regs, Platform: "linux/riscv64"})
	if err == nil || !strings.Contains(err.Error(), "no image for linux/riscv64") {
		t.Errorf("riscv64 from the index: %v", err)
	}
	_, err = registry.Pull(ctx, cache, "docker://"+reg.Host+"/x/multi:arm64", registry.Options{Registries: reg.Regs, Platform: "linux/amd64"})
	if err == nil || !strings.Contains(err.Error(), "config is for linux/arm64, not linux/amd64") {
		t.Errorf("an arm64 image pulled for amd64: %v", err)
	}
	if e := registrytest.CacheEntries(t, cache.Root); len(e) != 0 {
		t.Errorf("cache entries after refused pulls: %v", e)
	}
}

// manifestSize is the size of the manifest repo:tag names.
func manifestSize(t *testing.T, host, repo, tag string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+host+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", registry.MediaOCIManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return len(b)
}

// TestPullCached: an image the cache has is not fetched again, by tag or
// by digest, berth or docker; its signature is still checked.
func TestPullCached(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	ctx := context.Background()
	dir := t.TempDir()
	key, pub, _ := image.Keygen(filepath.Join(dir, "k"))
	_, otherPub, _ := image.Keygen(filepath.Join(dir, "other"))
	img := registrytest.PackImage(t, registrytest.MakeTree(t, "c"))
	image.Sign(img, key, "", "")
	if _, err := registry.Push(ctx, img, "docker://"+reg.Host+"/c/berth:v1", registry.PushOptions{Registries: reg.Regs, Signature: img + ".sig"}); err != nil {
		t.Fatal(err)
	}
	src := registrytest.WriteDockerDir(t, [][]registrytest.Entry{{{Name: "a", Data: "a"}}})
	reg.Skopeo("dir:"+src, "docker://"+reg.Host+"/c/docker:v1")
	proxy := registrytest.StartProxy(t, reg.Host)
	regs := registry.Registries{proxy.Host: {Insecure: true}}
	for _, repo := range []string{"c/berth", "c/docker"} {
		cache := newCache(t)
		ref := "docker://" + proxy.Host + "/" + repo + ":v1"
		first, err := registry.Pull(ctx, cache, ref, registry.Options{Registries: regs})
		if err != nil {
			t.Fatal(err)
		}
		first.Release()
		before := len(proxy.Heads())
		opts := registry.Options{Registries: regs}
		if repo == "c/berth" {
			opts.PublicKey = pub
		}
		again, err := registry.Pull(ctx, cache, ref, opts)
		if err != nil {
			t.Fatal(err)
		}
		again.Release()
		// The config, and the signature's blob: no layer.
		want, blobs := map[string]int{"c/berth": 2, "c/docker": 1}[repo], 0
		for _, h := range proxy.Heads()[before:] {
			if strings.Contains(h, "/blobs/") {
				blobs++
			}
		}
		if blobs != want {
			t.Errorf("%s: the second pull fetched %d blobs, want %d (no layer):\n%s", repo, blobs, want, strings.Join(proxy.Heads()[before:], ""))
		}
		if !again.Cached || again.Rootfs != first.Rootfs || again.Prepared.Digest != first.Prepared.Digest {
			t.Errorf("%s: second pull cached %v, entry %s (first %s)", repo, again.Cached, again.Prepared.Digest, first.Prepared.Digest)
		}
		if repo == "c/docker" && (again.Config.Cmd == nil || again.Config.Cmd[0] != "/bin/sh") {
			t.Errorf("%s: a cached pull lost the image's config: %+v", repo, again.Config)
		}
		if repo == "c/berth" {
			opts.PublicKey = otherPub
			if _, err := registry.Pull(ctx, cache, ref, opts); !errors.Is(err, image.ErrSignature) {
				t.Errorf("cached image with another key: %v, want a signature error", err)
			}
		}
	}
}

// TestPullConcurrent pulls one image by several goroutines at once, as
// boot does for containers sharing an image: each waits for the one
// downloading it and finds the image in the cache, none fails because
// another removed the downloads it was waiting for.
func TestPullConcurrent(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	img := registrytest.PackImage(t, registrytest.MakeTree(t, "shared"))
	ref := "docker://" + reg.Host + "/berth/shared:v1"
	ctx := context.Background()
	if _, err := registry.Push(ctx, img, ref, registry.PushOptions{Registries: reg.Regs}); err != nil {
		t.Fatalf("push: %v\n%s", err, reg.Log.String())
	}
	cache := newCache(t)
	errs := make(chan error)
	const n = 8
	for range n {
		go func() {
			p, err := registry.Pull(ctx, cache, ref, registry.Options{Registries: reg.Regs})
			if err == nil {
				p.Release()
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("pull: %v", err)
		}
	}
}

// TestDropOtherPulls: a pull removes the partial downloads of other
// images, except one another pull holds, and never follows a symlink
// planted there.
func TestDropOtherPulls(t *testing.T) {
	root := filepath.Join(t.TempDir(), ".pull")
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "keep-me"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"mine", "stale", "busy"} {
		if err := os.MkdirAll(filepath.Join(root, d, "blobs", "sha256"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, d, "blobs", "sha256", "part"), make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	unlock, err := registry.LockPullDir(filepath.Join(root, "busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	// A recent download of another image is kept for its own pull...
	var log strings.Builder
	registry.DropOtherPulls(root, "mine", time.Hour, &log)
	if _, err := os.Stat(filepath.Join(root, "stale")); err != nil {
		t.Fatalf("a download written a moment ago was dropped as stale: %v", err)
	}
	// ...until it is old, or its room is needed (0: however recent).
	registry.DropOtherPulls(root, "mine", 0, &log)
	for name, want := range map[string]bool{"mine": true, "busy": true, "stale": false, "link": false} {
		if _, err := os.Lstat(filepath.Join(root, name)); (err == nil) != want {
			t.Errorf("%s: present %v, want %v", name, err == nil, want)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "keep-me")); err != nil {
		t.Errorf("the directory behind the symlink lost its file: %v", err)
	}
	if !strings.Contains(log.String(), "removed the partial download of another image (stale)") {
		t.Errorf("log: %q", log.String())
	}
}

// TestCheckRoom: a pull refuses layers that do not fit on the cache's
// filesystem (a 4 MiB tmpfs here, 5% kept in reserve) before fetching
// any, counting what is downloaded already.
func TestCheckRoom(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	if err := registry.CheckRoom(dir, 1<<20, 2<<20); err != nil {
		t.Errorf("3 MiB of layers on a 4 MiB filesystem: %v", err)
	}
	if err := registry.CheckRoom(dir, 1<<50); err == nil || !strings.Contains(err.Error(), "the layers take 1125899906842624 more bytes") {
		t.Errorf("a 1 PiB layer: %v", err)
	}
	// Most of a 5 MiB layer downloaded already: what is left fits.
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(blobs, fmt.Sprintf("%064d", 0)+".partial"), make([]byte, 3<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := registry.CheckRoom(dir, 5<<20); err == nil {
		t.Error("5 MiB with 3 MiB downloaded and 1 MiB free: no error")
	}
	if err := registry.CheckRoom(dir, 3<<20+512<<10); err != nil {
		t.Errorf("3.5 MiB with 3 MiB downloaded: %v", err)
	}
}

// TestResolveToPinned: a mirror that lags (its tag names another image)
// does not fail a pinned reference the registry resolves to the pin;
// without a pin the mirror's answer stands, as before. A pin nobody
// matches gets the registry's own answer, and with the registry down a
// mirror's other answer is an error, not the last word.
func TestResolveToPinned(t *testing.T) {
	host := registrytest.Start(t, registrytest.Options{})
	mirror := registrytest.Start(t, registrytest.Options{})
	ctx := context.Background()
	imgA := registrytest.PackImage(t, registrytest.MakeTree(t, "a"))
	imgB := registrytest.PackImage(t, registrytest.MakeTree(t, "b"))
	pushV1(t, host, imgA)
	pushV1(t, mirror, imgB)
	ref := "docker://" + host.Host + "/m/img:v1"
	atHost, err := registry.Resolve(ctx, ref, host.Regs)
	if err != nil {
		t.Fatal(err)
	}
	regs := registry.Registries{host.Host: {Insecure: true, Mirrors: []string{mirror.Host}}, mirror.Host: {Insecure: true}}
	atMirror, err := registry.Resolve(ctx, ref, regs)
	if err != nil || atMirror == atHost {
		t.Fatalf("unpinned: %s, %v; want the mirror's answer, not the host's %s", atMirror, err, atHost)
	}
	if got, err := registry.ResolveTo(ctx, ref, regs, atHost); got != atHost || err != nil {
		t.Errorf("pinned to the host's digest: %s, %v", got, err)
	}
	other := "sha256:" + strings.Repeat("0", 64)
	if got, err := registry.ResolveTo(ctx, ref, regs, other); got != atHost || err != nil {
		t.Errorf("pinned to a digest nobody has: %s, %v; want the registry's answer %s", got, err, atHost)
	}
	host.Stop()
	if got, err := registry.ResolveTo(ctx, ref, regs, atHost); err == nil || !strings.Contains(err.Error(), mirror.Host+" answered "+atMirror) {
		t.Errorf("registry down, the mirror lagging: %s, %v; want an error naming the mirror's answer", got, err)
	}
}
