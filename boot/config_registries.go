package boot

import (
	"sort"
	"strconv"

	"berth/image/registry"
)

// checkRegistries validates the [registries."HOST:PORT"] tables (see
// registry.Settings): names are hosts, files absolute or relative to the
// config, a password goes with a username, mirrors are hosts and not the
// registry itself. A container image named docker://… is refused with
// a hint: boot does not pull yet (berth pull fills the cache by hand).
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
		if registry.IsRef(c.Image) {
			key := "container#" + strconv.Itoa(i) + ".image"
			if _, err := registry.ParseRef(c.Image); err != nil {
				v.addKey(key, "%v", err)
			} else {
				v.addKey(key, "images from a registry are not pulled at boot yet: pull it with berth pull, or name an image file")
			}
		}
	}
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
