package boot

import (
	"sort"
	"strconv"

	"berth/image"
	"berth/image/registry"
)

// checkRegistries validates the [registries."HOST:PORT"] tables (see
// registry.Settings): names are hosts, files absolute or relative to the
// config, a password goes with a username, mirrors are hosts and not the
// registry itself; and each container image named docker://…: a valid
// reference, its digest key the reference's own pin if it has one, no
// signature file (the signature is in the registry).
func (cfg *Config) checkRegistries(v *validator) {
	hosts := make([]string, 0, len(cfg.Registries))
	for h := range cfg.Registries {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		s := cfg.Registries[h]
		key := "registries." + tomlKey(h)
		if err := registry.CheckHost(h); err != nil {
			v.addKey(key, "want a table named \"HOST[:PORT]\": %v", err)
		}
		if s.PasswordFile != "" && s.Username == "" {
			v.addKey(key+".password_file", "a password_file needs a username")
		}
		if s.Insecure && s.CA != "" {
			v.addKey(key+".ca", "a CA means TLS, but insecure = true means plain HTTP: drop one")
		}
		for i, m := range s.Mirrors {
			if err := registry.CheckHost(m); err != nil {
				v.addKey(key+".mirrors", "mirror %d: %v", i, err)
			} else if m == h {
				v.addKey(key+".mirrors", "mirror %d is the registry itself", i)
			}
		}
	}
	for i, c := range cfg.Container {
		if !registry.IsRef(c.Image) {
			continue
		}
		key := "container#" + strconv.Itoa(i) + "."
		r, err := registry.ParseRef(c.Image)
		switch {
		case err != nil:
			v.addKey(key+"image", "%v", err)
		case c.Digest != "" && r.Digest != "" && c.Digest != r.Digest:
			v.addKey(key+"digest", "pins %s, but the image reference pins %s", c.Digest, r.Digest)
		}
		if c.Signature != "" {
			v.addKey(key+"signature", "an image from a registry has its signature in the registry (a tag derived from its digest): drop signature")
		}
	}
}

// registryFiles are the [registries] tables' files, by host, as FileRefs.
func (cfg *Config) registryFiles() []FileRef {
	hosts := make([]string, 0, len(cfg.Registries))
	for h := range cfg.Registries {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var refs []FileRef
	for _, h := range hosts {
		s, key := cfg.Registries[h], "registries."+tomlKey(h)
		refs = append(refs, FileRef{Key: key + ".ca", Path: s.CA}, FileRef{Key: key + ".password_file", Path: s.PasswordFile})
	}
	return refs
}

// RegistrySettings returns the [registries] tables with their files
// resolved against the config's directory.
func (cfg *Config) RegistrySettings() registry.Registries {
	out := make(registry.Registries, len(cfg.Registries))
	for h, s := range cfg.Registries {
		s.CA, s.PasswordFile = cfg.resolve(s.CA), cfg.resolve(s.PasswordFile)
		out[h] = s
	}
	return out
}

// pulledEntries are the cache entries the config's registry images were
// last pulled as: the image collectors keep them.
func (cfg *Config) pulledEntries(cache *image.Cache) map[string]bool {
	keep := map[string]bool{}
	for _, c := range cfg.Container {
		if registry.IsRef(c.Image) {
			if _, entry, ok := registry.Recall(cache, c.Image, c.Platform); ok {
				keep[entry] = true
			}
		}
	}
	return keep
}

// tomlKey writes a table name as the config's scanner records it: bare
// when TOML allows, quoted otherwise.
func tomlKey(k string) string {
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return strconv.Quote(k)
		}
	}
	return k
}
