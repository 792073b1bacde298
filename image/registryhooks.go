package image

import (
	"fmt"

	"berth/mmapfs"
)

// What package image/registry needs from image: the platform choice of
// OCI layouts, and a look at a downloaded layer.

// IndexEntry is one image manifest an index (or docker manifest list)
// lists, with its platform.
type IndexEntry struct {
	Digest    string
	MediaType string
	Size      int64
	Platform  Platform
}

// PickPlatform picks the one entry for platform ("" is the running one)
// exactly as an OCI layout's index is picked from (see Digest).
func PickPlatform(entries []IndexEntry, platform string) (IndexEntry, error) {
	want, err := ParsePlatform(platform)
	if err != nil {
		return IndexEntry{}, err
	}
	all := make([]candidate, len(entries))
	for i, e := range entries {
		all[i] = candidate{desc: descriptor{MediaType: e.MediaType, Digest: e.Digest, Size: e.Size}, platform: e.Platform}
	}
	c, err := choose(all, "", want)
	if err != nil {
		return IndexEntry{}, err
	}
	return IndexEntry{Digest: c.desc.Digest, MediaType: c.desc.MediaType, Size: c.desc.Size, Platform: c.platform}, nil
}

// Matches reports whether an image of platform p runs where platform is
// asked ("" is the running one).
func (p Platform) Matches(platform string) (bool, error) {
	want, err := ParsePlatform(platform)
	if err != nil {
		return false, err
	}
	return want.matches(p), nil
}

// BerthConfig reports whether the file at path is a berth image and, when
// it is, returns what its config frame says about running it.
func BerthConfig(path string) (isBerth bool, cfg Config, err error) {
	m, err := mmapfs.Map(path)
	if err != nil {
		return false, cfg, err
	}
	defer m.Close()
	format, err := detectFormat(m)
	if err != nil || format != FormatBerth {
		return false, cfg, nil
	}
	t, err := mmapfs.ParseSeekTable(m, m.Size())
	if err != nil {
		return false, cfg, fmt.Errorf("%s: berth image: %w", path, err)
	}
	if cfg, err = readConfigFrame(m, t); err != nil {
		return false, cfg, fmt.Errorf("%s: berth image: %w", path, err)
	}
	return true, cfg, nil
}

// ParseOCIConfig reads what an OCI (or docker) image config says about
// running the image, checked as for OCI layouts.
func ParseOCIConfig(b []byte) (Config, error) {
	var cfg imageConfig
	if err := DecodeJSON(b, &cfg); err != nil {
		return Config{}, err
	}
	return cfg.Config, cfg.Config.check()
}
