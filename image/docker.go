package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"strings"
)

// dockerManifest is one image of a docker save archive's manifest.json.
type dockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// openDocker resolves a docker save archive: manifest.json names the
// config and layer files. Its digest is the image ID, the sha256 of the
// config, which names every layer by its diff ID. manifest.json may list
// at most maxIndexEntries images (as an OCI layout's indexes) and the
// chosen one at most MaxLayers layers.
func (in *input) openDocker(want Platform) error {
	var images []dockerManifest
	if err := readJSON(in.store, "manifest.json", "", &images); err != nil {
		return err
	}
	if len(images) > maxIndexEntries {
		return fmt.Errorf("manifest.json: %d images, at most %d", len(images), maxIndexEntries)
	}
	var chosen *dockerManifest
	var tags []string
	for i := range images {
		tags = append(tags, images[i].RepoTags...)
		if in.ref == "" || slices.Contains(images[i].RepoTags, in.ref) {
			if chosen != nil {
				return fmt.Errorf("%s: several images; name one as PATH:TAG (tags: %s)", in.path, strings.Join(tags, ", "))
			}
			chosen = &images[i]
		}
	}
	if chosen == nil {
		return fmt.Errorf("%s: no image tagged %q (tags: %s)", in.path, in.ref, strings.Join(tags, ", "))
	}
	cfgName := path.Clean(chosen.Config)
	cfgBytes, err := readFile(in.store, cfgName, digestInName(cfgName))
	if err != nil {
		return err
	}
	var cfg imageConfig
	if err := DecodeJSON(cfgBytes, &cfg); err != nil {
		return fmt.Errorf("%s: %w", cfgName, err)
	}
	in.platf = Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if !want.matches(in.platf) {
		return fmt.Errorf("%s: the image is for %s, not %s", in.path, in.platf, want)
	}
	if err := cfg.Config.check(); err != nil {
		return fmt.Errorf("%s: %w", in.path, err)
	}
	in.config = cfg.Config
	if err := checkLayerCount(len(chosen.Layers)); err != nil {
		return fmt.Errorf("manifest.json: %w", err)
	}
	if len(chosen.Layers) != len(cfg.RootFS.DiffIDs) {
		return fmt.Errorf("%s: %d layers but %d diff_ids in the config", in.path, len(chosen.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, name := range chosen.Layers {
		name = path.Clean(name)
		if err := checkDigestSyntax(cfg.RootFS.DiffIDs[i]); err != nil {
			return fmt.Errorf("layer %d diff_id: %w", i, err)
		}
		if !in.store.has(name) {
			return fmt.Errorf("layer %d: %s is not in the archive", i, name)
		}
		in.layers = append(in.layers, layer{name: name, digest: digestInName(name), size: -1, diffID: cfg.RootFS.DiffIDs[i]})
	}
	sum := sha256.Sum256(cfgBytes)
	in.digest = "sha256:" + hex.EncodeToString(sum[:])
	return nil
}

// digestInName returns the digest a file name carries ("blobs/sha256/HEX"
// or "HEX.json"), or "".
func digestInName(name string) string {
	base := strings.TrimSuffix(path.Base(name), ".json")
	if d := "sha256:" + base; checkDigestSyntax(d) == nil &&
		(strings.HasPrefix(name, "blobs/sha256/") || strings.HasSuffix(name, ".json")) {
		return d
	}
	return ""
}
