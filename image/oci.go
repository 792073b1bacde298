package image

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
)

// OCI media types berth reads; docker's schema 2 equivalents are accepted
// beside them.
const (
	mediaIndex        = "application/vnd.oci.image.index.v1+json"
	mediaManifest     = "application/vnd.oci.image.manifest.v1+json"
	mediaDockerList   = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaDockerManif  = "application/vnd.docker.distribution.manifest.v2+json"
	annotationRefName = "org.opencontainers.image.ref.name"
	maxIndexDepth     = 4
	// maxIndexEntries bounds the descriptors of an image's indexes, all
	// levels together (a layout used as a store of many tagged images
	// fits), and maxNestedIndexes the nested indexes read (each may be a
	// 4 MiB blob to parse).
	maxIndexEntries  = 16384
	maxNestedIndexes = 64
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ociIndex struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type ociManifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant"`
	RootFS       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	Config Config `json:"config"`
}

// Platform is an OS, architecture and variant, as in an OCI index.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ParsePlatform reads "os/arch[/variant]" or "arch"; "" is the running
// platform (linux/arm images get the variant of berth's own GOARM).
func ParsePlatform(s string) (Platform, error) {
	if s == "" {
		p := Platform{OS: "linux", Architecture: runtime.GOARCH}
		if p.Architecture == "arm" {
			p.Variant = "v" + goarm()
		}
		return p, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) == 1 {
		parts = []string{"linux", parts[0]}
	}
	if len(parts) > 3 || slices.Contains(parts, "") {
		return Platform{}, fmt.Errorf("platform %q: want OS/ARCH or OS/ARCH/VARIANT", s)
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	switch {
	case p.OS != "linux":
		return Platform{}, fmt.Errorf("platform %q: berth runs linux images, not %s ones", s, p.OS)
	case !slices.Contains(linuxArches, p.Architecture):
		return Platform{}, fmt.Errorf("platform %q: unknown architecture %q (want one of %s)", s, p.Architecture, strings.Join(linuxArches, ", "))
	case !validVariant(p.Variant):
		return Platform{}, fmt.Errorf("platform %q: invalid variant %q (want v7, v8, v3…)", s, p.Variant)
	}
	return p, nil
}

// linuxArches are the architectures of the OCI image spec's platform list
// (Go's GOARCH names) that Linux runs on.
var linuxArches = []string{"386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le",
	"ppc64", "ppc64le", "riscv64", "s390x"}

// validVariant accepts "", or up to 16 of a-z 0-9 '.' ("v7", "v8.2", "rva22u64").
func validVariant(v string) bool {
	if len(v) > 16 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.') {
			return false
		}
	}
	return true
}

// goarm is the GOARM berth was built with, "7" when unknown.
func goarm() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" && s.Value != "" {
				return strings.SplitN(s.Value, ",", 2)[0]
			}
		}
	}
	return "7"
}

// matches reports whether an image of platform p runs where want is asked.
// A variant is compared only when both name one; arm64's is v8 by default.
func (want Platform) matches(p Platform) bool {
	norm := func(p Platform) string {
		if p.Architecture == "arm64" && p.Variant == "" {
			return "v8"
		}
		return p.Variant
	}
	return want.OS == p.OS && want.Architecture == p.Architecture &&
		(want.Variant == "" || p.Variant == "" || norm(want) == norm(p))
}

// candidate is a manifest found in a layout, with where it came from.
type candidate struct {
	desc     descriptor
	platform Platform
	ref      string
}

// openOCI resolves the layout (or docker archive) in in.store to one image
// and its layers.
func (in *input) openOCI(platform string) error {
	want, err := ParsePlatform(platform)
	if err != nil {
		return err
	}
	if !in.store.has("oci-layout") || !in.store.has("index.json") {
		if in.store.has("manifest.json") {
			in.format = FormatDocker
			return in.openDocker(want)
		}
		return fmt.Errorf("%s: not an OCI image layout (no oci-layout and index.json) nor a docker save archive", in.path)
	}
	in.format = FormatOCI
	var layout struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := readJSON(in.store, "oci-layout", "", &layout); err != nil {
		return err
	}
	if !strings.HasPrefix(layout.Version, "1.") {
		return fmt.Errorf("oci-layout: unsupported version %q", layout.Version)
	}
	var index ociIndex
	if err := readJSON(in.store, "index.json", "", &index); err != nil {
		return err
	}
	var all []candidate
	budget := indexBudget{entries: maxIndexEntries, nested: maxNestedIndexes, platforms: map[string]Platform{}}
	if err := in.collect(index, 0, &all, &budget); err != nil {
		return err
	}
	chosen, err := choose(all, in.ref, want)
	if err != nil {
		return fmt.Errorf("%s: %w", in.path, err)
	}
	var m ociManifest
	if err := readBlobJSON(in.store, chosen.desc, &m); err != nil {
		return err
	}
	var cfg imageConfig
	if err := readBlobJSON(in.store, m.Config, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// The index may label a manifest with any platform: the config says
	// what the image is built for.
	in.platf = Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if !want.matches(in.platf) {
		return fmt.Errorf("%s: the image's config is for %s, not %s", in.path, in.platf, want)
	}
	if err := cfg.Config.check(); err != nil {
		return fmt.Errorf("%s: %w", in.path, err)
	}
	in.config = cfg.Config
	in.digest = chosen.desc.Digest
	if err := in.setLayers(m.Layers, cfg); err != nil {
		return fmt.Errorf("manifest %s: %w", chosen.desc.Digest, err)
	}
	return nil
}

// indexBudget is what collect may still visit: descriptors, nested ones
// included, and nested indexes read.
type indexBudget struct {
	entries, nested int
	platforms       map[string]Platform // manifestPlatform's answers, by digest
}

// collect lists the manifests reachable from an index; only the top level
// is filtered by ref, as the OCI layout spec names refs there. budget
// bounds the descriptors visited and the nested indexes read: an index
// listing the same nested index thousands of times would otherwise make
// berth read and keep millions of candidates before any digest or
// signature is checked.
func (in *input) collect(index ociIndex, depth int, out *[]candidate, budget *indexBudget) error {
	if depth > maxIndexDepth {
		return fmt.Errorf("image indexes nested more than %d deep", maxIndexDepth)
	}
	for _, d := range index.Manifests {
		if budget.entries--; budget.entries < 0 {
			return fmt.Errorf("image indexes list more than %d manifests and indexes, nested ones counted", maxIndexEntries)
		}
		ref := d.Annotations[annotationRefName]
		switch d.MediaType {
		case mediaIndex, mediaDockerList:
			if budget.nested--; budget.nested < 0 {
				return fmt.Errorf("image indexes name more than %d nested indexes", maxNestedIndexes)
			}
			var sub ociIndex
			if err := readBlobJSON(in.store, d, &sub); err != nil {
				return err
			}
			var inner []candidate
			if err := in.collect(sub, depth+1, &inner, budget); err != nil {
				return err
			}
			for _, c := range inner {
				c.ref = ref
				*out = append(*out, c)
			}
		case mediaManifest, mediaDockerManif:
			c := candidate{desc: d, ref: ref}
			if d.Platform != nil {
				c.platform = *d.Platform
			} else {
				p, seen := budget.platforms[d.Digest]
				if !seen { // each manifest read once, however often listed
					var err error
					if p, err = in.manifestPlatform(d); err != nil {
						return err
					}
					budget.platforms[d.Digest] = p
				}
				c.platform = p
			}
			*out = append(*out, c)
		}
	}
	return nil
}

// manifestPlatform reads a manifest's config to learn its platform.
func (in *input) manifestPlatform(d descriptor) (Platform, error) {
	var m ociManifest
	if err := readBlobJSON(in.store, d, &m); err != nil {
		return Platform{}, err
	}
	var cfg imageConfig
	if err := readBlobJSON(in.store, m.Config, &cfg); err != nil {
		return Platform{}, fmt.Errorf("config: %w", err)
	}
	return Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}, nil
}

// choose picks the one manifest for ref and platform.
func choose(all []candidate, ref string, want Platform) (candidate, error) {
	var refs, platforms []string
	var match []candidate
	for _, c := range all {
		if ref != "" && c.ref != ref {
			continue
		}
		platforms = append(platforms, c.platform.String())
		if want.matches(c.platform) {
			match = append(match, c)
		}
	}
	for _, c := range match {
		if c.ref != "" && !slices.Contains(refs, c.ref) {
			refs = append(refs, c.ref)
		}
	}
	switch {
	case len(all) == 0:
		return candidate{}, errors.New("the index lists no image")
	case len(platforms) == 0:
		return candidate{}, fmt.Errorf("no image named %q", ref)
	case len(match) == 0:
		return candidate{}, fmt.Errorf("no image for %s (the layout has %s); pick one with --platform", want, strings.Join(platforms, ", "))
	}
	for _, c := range match[1:] {
		if c.desc.Digest != match[0].desc.Digest {
			return candidate{}, fmt.Errorf("%d images for %s; name one as PATH:REF (refs: %s)", len(match), want, strings.Join(refs, ", "))
		}
	}
	return match[0], nil
}

// setLayers checks the manifest's layers (at most MaxLayers) against the
// config's diff IDs.
func (in *input) setLayers(layers []descriptor, cfg imageConfig) error {
	if err := checkLayerCount(len(layers)); err != nil {
		return err
	}
	if len(layers) != len(cfg.RootFS.DiffIDs) {
		return fmt.Errorf("%d layers but %d diff_ids in the config", len(layers), len(cfg.RootFS.DiffIDs))
	}
	for i, d := range layers {
		if !strings.Contains(d.MediaType, "tar") {
			return fmt.Errorf("layer %d (%s): unsupported media type %q", i, d.Digest, d.MediaType)
		}
		name, err := blobPath(d.Digest)
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		if !in.store.has(name) {
			return fmt.Errorf("layer %d: blob %s is not in the layout", i, d.Digest)
		}
		if err := checkDigestSyntax(cfg.RootFS.DiffIDs[i]); err != nil {
			return fmt.Errorf("layer %d diff_id: %w", i, err)
		}
		in.layers = append(in.layers, layer{name: name, digest: d.Digest, size: d.Size, diffID: cfg.RootFS.DiffIDs[i]})
	}
	return nil
}

// readJSON reads and decodes a metadata file of the store.
func readJSON(s blobStore, name, digest string, v any) error {
	b, err := readFile(s, name, digest)
	if err != nil {
		return err
	}
	if err := DecodeJSON(b, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// readBlobJSON reads and decodes a blob named by a descriptor.
func readBlobJSON(s blobStore, d descriptor, v any) error {
	b, err := readBlob(s, d)
	if err != nil {
		return err
	}
	if err := DecodeJSON(b, v); err != nil {
		return fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return nil
}
