package registry

import (
	"fmt"
	"strings"
	"testing"

	"berth/image"
)

// TestManifestLayerCount: a registry manifest may list 1 to
// image.MaxLayers layers, the bound local layouts and docker archives
// share; none or one more is refused, naming the count.
func TestManifestLayerCount(t *testing.T) {
	layer := fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":1}`, digestOf([]byte("l")))
	for _, n := range []int{0, 1, image.MaxLayers, image.MaxLayers + 1} {
		layers := strings.TrimSuffix(strings.Repeat(layer+",", n), ",")
		b := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":2},"layers":[%s]}`,
			MediaOCIManifest, MediaOCIConfig, digestOf([]byte("{}")), layers)
		m, err := parseManifest([]byte(b), "")
		ok := n >= 1 && n <= image.MaxLayers
		want := fmt.Sprintf("manifest: %d layers, want 1 to %d", n, image.MaxLayers)
		switch {
		case ok && (err != nil || len(m.Layers) != n):
			t.Errorf("%d layers: %v", n, err)
		case !ok && (err == nil || err.Error() != want):
			t.Errorf("%d layers: %v, want %q", n, err, want)
		}
	}
}
