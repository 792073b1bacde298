package registry_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
