package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"berth/image"
)

// Media types of the manifests, configs and layers berth reads and writes.
const (
	MediaOCIIndex     = "application/vnd.oci.image.index.v1+json"
	MediaOCIManifest  = "application/vnd.oci.image.manifest.v1+json"
	MediaDockerList   = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaDockerManif  = "application/vnd.docker.distribution.manifest.v2+json"
	MediaOCIConfig    = "application/vnd.oci.image.config.v1+json"
	MediaDockerConfig = "application/vnd.docker.container.image.v1+json"
	MediaLayerZstd    = "application/vnd.oci.image.layer.v1.tar+zstd"
	MediaSignature    = "application/vnd.berth.signature.v1"
	mediaOCIEmpty     = "application/vnd.oci.empty.v1+json"
	acceptedManifests = MediaOCIIndex + ", " + MediaOCIManifest + ", " + MediaDockerList + ", " + MediaDockerManif
	maxManifest       = 4 << 20 // a manifest, an index, a config
	maxIndexEntries   = 1024
)

// layerType reports whether mediaType is a layer type berth unpacks; the content decides
// the compression, the type only has to name a tar.
func layerType(mediaType string) bool {
	switch mediaType {
	case "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip", MediaLayerZstd,
		"application/vnd.docker.image.rootfs.diff.tar.gzip", "application/vnd.docker.image.rootfs.diff.tar",
		"application/vnd.docker.image.rootfs.diff.tar.zstd":
		return true
	}
	return false // application/vnd.oci.image.layer.nondistributable.v1.tar among others
}

// descriptor names a blob or manifest.
type descriptor struct {
	MediaType string          `json:"mediaType"`
	Digest    string          `json:"digest"`
	Size      int64           `json:"size"`
	Platform  *image.Platform `json:"platform,omitempty"`
	URLs      []string        `json:"urls,omitempty"`
}

// manifest is an image manifest or an index (manifest list), as parsed.
type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        *descriptor  `json:"config,omitempty"`
	Layers        []descriptor `json:"layers,omitempty"`
	Manifests     []descriptor `json:"manifests,omitempty"`
}

// isIndex reports whether m lists manifests rather than layers.
func (m *manifest) isIndex() bool { return m.Config == nil }

// digestOf is the sha256 digest of b.
func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// parseManifest parses and checks a manifest or index; contentType is the
// registry's Content-Type, used when the document names no media type.
func parseManifest(b []byte, contentType string) (*manifest, error) {
	var m manifest
	if err := image.DecodeJSON(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	mt := m.MediaType
	if mt == "" {
		mt, _, _ = strings.Cut(contentType, ";")
		mt = strings.TrimSpace(mt)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("manifest: schemaVersion %d, want 2 (docker schema 1 is not supported)", m.SchemaVersion)
	}
	switch mt {
	case MediaOCIIndex, MediaDockerList:
		if m.Config != nil || len(m.Layers) > 0 {
			return nil, fmt.Errorf("manifest: an index (%s) with a config or layers", mt)
		}
		return &m, checkIndex(&m)
	case MediaOCIManifest, MediaDockerManif:
		if m.Config == nil || len(m.Manifests) > 0 {
			return nil, fmt.Errorf("manifest: an image manifest (%s) without a config, or with manifests", mt)
		}
		m.MediaType = mt
		return &m, checkImage(&m)
	case "":
		if m.Config == nil && len(m.Manifests) > 0 {
			m.MediaType = MediaOCIIndex
			return &m, checkIndex(&m)
		}
		if m.Config != nil {
			m.MediaType = MediaOCIManifest
			return &m, checkImage(&m)
		}
	}
	return nil, fmt.Errorf("manifest: unsupported media type %s", quoted(mt))
}

// checkDescriptor checks a descriptor's digest and size.
func checkDescriptor(d descriptor, what string, max int64) error {
	if err := image.CheckDigest(d.Digest); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if d.Size < 0 || d.Size > max {
		return fmt.Errorf("%s %s: size %d out of range", what, d.Digest, d.Size)
	}
	return nil
}

// checkIndex checks an index's entries.
func checkIndex(m *manifest) error {
	if len(m.Manifests) > maxIndexEntries {
		return fmt.Errorf("index: %d manifests, over the limit of %d", len(m.Manifests), maxIndexEntries)
	}
	for i, d := range m.Manifests {
		if err := checkDescriptor(d, fmt.Sprintf("index entry %d", i), maxManifest); err != nil {
			return err
		}
	}
	return nil
}

// checkImage checks an image manifest's config and layers.
func checkImage(m *manifest) error {
	if err := checkDescriptor(*m.Config, "config", maxManifest); err != nil {
		return err
	}
	if len(m.Layers) == 0 || len(m.Layers) > image.MaxLayers {
		return fmt.Errorf("manifest: %d layers, want 1 to %d", len(m.Layers), image.MaxLayers)
	}
	for i, l := range m.Layers {
		what := fmt.Sprintf("layer %d", i)
		if err := checkDescriptor(l, what, 1<<50); err != nil {
			return err
		}
		if !layerType(l.MediaType) {
			return fmt.Errorf("%s %s: unsupported media type %s", what, l.Digest, quoted(l.MediaType))
		}
		if len(l.URLs) > 0 {
			return fmt.Errorf("%s %s: a foreign layer (urls), which berth does not fetch", what, l.Digest)
		}
	}
	return nil
}

// fetched is a manifest as the registry served it.
type fetched struct {
	bytes       []byte
	contentType string
	digest      string
	m           *manifest
}

// fetchManifest gets the manifest ref names (a tag or a digest) and, when
// want is set, refuses bytes that do not hash to it.
func (c *client) fetchManifest(ctx context.Context, ref, want string) (*fetched, error) {
	what := "manifest " + c.repo + ":" + ref
	ctx, cancel := smallFetch(ctx)
	defer cancel()
	resp, err := c.get(ctx, "GET", "manifests/"+ref, [2]string{"Accept", acceptedManifests})
	if err != nil {
		return nil, slowFetch(ctx, what, err)
	}
	if resp.status != 200 {
		return nil, statusError(resp, what)
	}
	b, err := readAll(resp, maxManifest, what)
	if err != nil {
		return nil, slowFetch(ctx, what, err)
	}
	f := &fetched{bytes: b, contentType: resp.get("Content-Type"), digest: digestOf(b)}
	if want != "" && f.digest != want {
		return nil, fmt.Errorf("%s: %w: the registry sent %s, the reference pins %s (nothing was fetched or unpacked)", what, image.ErrDigestMismatch, f.digest, want)
	}
	if f.m, err = parseManifest(b, f.contentType); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return f, nil
}

// pickImage resolves an index to the image manifest of platform, as
// image does for OCI layouts (entries must name their platform, as
// registries' indexes do); an image manifest is returned as it is.
func (c *client) pickImage(ctx context.Context, top *fetched, platform string) (*fetched, error) {
	if !top.m.isIndex() {
		return top, nil
	}
	var entries []image.IndexEntry
	for _, d := range top.m.Manifests {
		if d.MediaType != MediaOCIManifest && d.MediaType != MediaDockerManif {
			continue // nested indexes, artifacts
		}
		e := image.IndexEntry{Digest: d.Digest, MediaType: d.MediaType, Size: d.Size}
		if d.Platform != nil {
			e.Platform = *d.Platform
		}
		entries = append(entries, e)
	}
	chosen, err := image.PickPlatform(entries, platform)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", top.digest, err)
	}
	f, err := c.fetchManifest(ctx, chosen.Digest, chosen.Digest)
	if err != nil {
		return nil, err
	}
	if f.m.isIndex() {
		return nil, fmt.Errorf("index %s: entry %s is an index, not an image manifest", top.digest, chosen.Digest)
	}
	return f, nil
}
