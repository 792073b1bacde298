package registry

import (
	"context"
	"testing"

	"berth/image"
)

// TestPushPullBerth pushes a berth image and pulls it back by tag and by
// digest: the layer is the file byte for byte, the cache entry is keyed by
// the berth digest, and the tree is the packed one.
func TestPushPullBerth(t *testing.T) {
	for _, o := range []struct {
		name string
		opts registryOptions
	}{{"http", registryOptions{}}, {"tls", registryOptions{tls: true}}, {"basic", registryOptions{tls: true, basic: true}}} {
		t.Run(o.name, func(t *testing.T) {
			reg := startRegistry(t, o.opts)
			tree := makeTree(t, "one")
			img := packImage(t, tree)
			ref := "docker://" + reg.host + "/berth/demo:v1"
			ctx := context.Background()
			md, err := Push(ctx, img, ref, PushOptions{Registries: reg.regs})
			if err != nil {
				t.Fatalf("push: %v\n%s", err, reg.log.String())
			}
			cache, err := image.OpenCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []string{ref, "docker://" + reg.host + "/berth/demo@" + md} {
				p, err := Pull(ctx, cache, r, Options{Registries: reg.regs})
				if err != nil {
					t.Fatalf("pull %s: %v", r, err)
				}
				p.Release()
				if p.Digest != md || p.Manifest != md {
					t.Errorf("pull %s: digest %s manifest %s, pushed %s", r, p.Digest, p.Manifest, md)
				}
				if want := fileDigest(t, img); p.Prepared.Digest != want {
					t.Errorf("pull %s: cache entry %s, want the berth digest %s", r, p.Prepared.Digest, want)
				}
				if got, want := treeSum(t, p.Rootfs), treeSum(t, tree); got != want {
					t.Errorf("pull %s: tree differs:\n%s\nwant\n%s", r, got, want)
				}
			}
		})
	}
}
